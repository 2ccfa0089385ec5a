package limits

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis keeps counters in Redis, shared by every replica: each decision
// is one script call (one round trip) that reads and counts all of its
// checks atomically, on Redis' own clock unless the backend was given
// one (tests). Keys carry the tenant and user as a hash tag, so one
// decision's keys live on one node of a Redis Cluster.
type Redis struct {
	client redis.UniversalClient
	prefix string
	// ClientClock makes decisions use the caller's time instead of
	// Redis' TIME: for tests that move a clock.
	ClientClock bool
}

// NewRedis is a backend on client; keys start with prefix (default
// "apimeter:").
func NewRedis(client redis.UniversalClient, prefix string) *Redis {
	if prefix == "" {
		prefix = "apimeter:"
	}
	return &Redis{client: client, prefix: prefix}
}

// DialRedis connects to a REDIS_URL and checks the server answers.
func DialRedis(ctx context.Context, url string) (*redis.Client, error) {
	c, err := RedisClient(url)
	if err != nil {
		return nil, err
	}
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("redis %s: %w", c.Options().Addr, err)
	}
	return c, nil
}

// RedisClient is a client for a REDIS_URL (redis:// or rediss://) with
// short timeouts unless the URL sets them: a limiter that waits long is
// worse than one that fails.
func RedisClient(url string) (*redis.Client, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	if !strings.Contains(url, "dial_timeout") {
		opt.DialTimeout = time.Second
	}
	if !strings.Contains(url, "read_timeout") {
		opt.ReadTimeout = 250 * time.Millisecond
	}
	if !strings.Contains(url, "write_timeout") {
		opt.WriteTimeout = 250 * time.Millisecond
	}
	if !strings.Contains(url, "max_retries") {
		opt.MaxRetries = 1
	}
	return redis.NewClient(opt), nil
}

func (r *Redis) key(k Key) string {
	return r.prefix + "{" + k.Tenant + "|" + k.User + "}:" + k.Policy
}

// scriptNow starts a script that takes the time from ARGV[1] (µs), or
// from Redis' TIME when it is "".
const scriptNow = `
local now
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[1])
end`

// takeScript: KEYS are the checks' counters. ARGV[1] is the time in µs
// ("" for Redis' clock), ARGV[2] the cost, then five values per check:
// kind (w: sliding window, q: quota), limit, soft (1/0), the slot width
// in µs (w) or the period's start in µs (q), and the key's time to live
// in ms. A window is a hash of slot → count; a quota a hash with the
// period (p) and the count (u). It answers {allowed, now, then per
// check: used, state (0 denied, 1 admitted, 2 unseeded), reset µs,
// retry µs}.
var takeScript = redis.NewScript(scriptNow + `
local cost = tonumber(ARGV[2])
local ok = 1
local out = {}
local heads = {}
for i = 1, #KEYS do
  local a = 3 + (i - 1) * 5
  local kind, limit, soft, p = ARGV[a], tonumber(ARGV[a + 1]), ARGV[a + 2] == '1', tonumber(ARGV[a + 3])
  local used, state, reset, retry = 0, 1, 0, 0
  if kind == 'w' then
    local head = math.floor(now / p)
    heads[i] = head
    local kv = redis.call('HGETALL', KEYS[i])
    local slots, stale = {}, {}
    for j = 1, #kv, 2 do
      local s = tonumber(kv[j])
      if s < head - 60 then
        stale[#stale + 1] = kv[j]
      else
        local c = tonumber(kv[j + 1])
        used = used + c
        slots[#slots + 1] = {s, c}
      end
    end
    if #stale > 0 then redis.call('HDEL', KEYS[i], unpack(stale)) end
    table.sort(slots, function(x, y) return x[1] < y[1] end)
    if #slots > 0 then reset = (slots[1][1] + 61) * p else reset = (head + 61) * p end
    if not soft and used + cost > limit then
      state, ok = 0, 0
      local need, freed = used + cost - limit, 0
      retry = (head + 61) * p
      for _, sc in ipairs(slots) do
        freed = freed + sc[2]
        if freed >= need then retry = (sc[1] + 61) * p break end
      end
      retry = retry - now
    end
  else
    local v = redis.call('HMGET', KEYS[i], 'p', 'u')
    if not v[1] or tonumber(v[1]) ~= p then
      state, ok = 2, 0
    else
      used = tonumber(v[2])
      if not soft and used + cost > limit then state, ok = 0, 0 end
    end
  end
  out[#out + 1] = used
  out[#out + 1] = state
  out[#out + 1] = reset
  out[#out + 1] = retry
end
if ok == 1 and cost > 0 then
  for i = 1, #KEYS do
    local a = 3 + (i - 1) * 5
    local b = 1 + (i - 1) * 4
    if ARGV[a] == 'w' then
      local p = tonumber(ARGV[a + 3])
      redis.call('HINCRBY', KEYS[i], tostring(heads[i]), cost)
      if out[b] == 0 then out[b + 2] = (heads[i] + 61) * p end
    else
      redis.call('HINCRBY', KEYS[i], 'u', cost)
    end
    redis.call('PEXPIRE', KEYS[i], ARGV[a + 4])
    out[b] = out[b] + cost
  end
end
local res = {ok, tostring(now)}
for _, x in ipairs(out) do res[#res + 1] = tostring(x) end
return res
`)

// raiseScript lifts a quota counter: KEYS[1], ARGV period µs, used, ttl ms.
var raiseScript = redis.NewScript(`
local v = redis.call('HMGET', KEYS[1], 'p', 'u')
local p, used = tonumber(ARGV[1]), tonumber(ARGV[2])
if not v[1] or tonumber(v[1]) ~= p then
  redis.call('HSET', KEYS[1], 'p', ARGV[1], 'u', ARGV[2])
elseif tonumber(v[1]) == p and tonumber(v[2]) < used then
  redis.call('HSET', KEYS[1], 'u', ARGV[2])
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`)

// Take implements Backend.
func (r *Redis) Take(ctx context.Context, now time.Time, checks []Check, cost uint64, states []State) (bool, error) {
	if len(checks) > MaxChecks {
		return false, ErrTooManyChecks
	}
	keys := make([]string, len(checks))
	args := make([]any, 0, 2+5*len(checks))
	if r.ClientClock {
		args = append(args, now.UnixMicro())
	} else {
		args = append(args, "")
	}
	args = append(args, cost)
	for i, c := range checks {
		keys[i] = r.key(c.Key)
		soft := "0"
		if c.Soft {
			soft = "1"
		}
		if c.Window > 0 {
			width := max(c.Window.Microseconds()/windowSlots, 1)
			ttl := c.Window.Milliseconds() + c.Window.Milliseconds()/windowSlots + 1000
			args = append(args, "w", c.Limit, soft, width, ttl)
		} else {
			ttl := c.PeriodEnd.Sub(now).Milliseconds() + 7*24*3600*1000
			args = append(args, "q", c.Limit, soft, c.PeriodStart.UnixMicro(), max(ttl, 1000))
		}
	}
	res, err := takeScript.Run(ctx, r.client, keys, args...).Slice()
	if err != nil {
		return false, err
	}
	if len(res) != 2+4*len(checks) {
		return false, errors.New("limits: unexpected answer from redis")
	}
	num := func(v any) int64 {
		switch v := v.(type) {
		case int64:
			return v
		case string:
			f, _ := strconv.ParseFloat(v, 64)
			return int64(f)
		}
		return 0
	}
	allowed := num(res[0]) == 1
	for i, c := range checks {
		o := res[2+4*i:]
		st := State{Used: uint64(num(o[0]))}
		switch num(o[1]) {
		case 0:
			st.Denied = true
			if c.Window > 0 {
				st.RetryAfter = time.Duration(num(o[3])) * time.Microsecond
			} else {
				st.RetryAfter = c.PeriodEnd.Sub(now)
			}
		case 2:
			st.Unseeded = true
		}
		if c.Window > 0 {
			st.Reset = time.UnixMicro(num(o[2])).UTC()
		} else {
			st.Reset = c.PeriodEnd
		}
		states[i] = st
	}
	return allowed, nil
}

// Raise implements Backend.
func (r *Redis) Raise(ctx context.Context, k Key, period, periodEnd time.Time, used uint64) error {
	ttl := max(time.Until(periodEnd).Milliseconds(), 0) + 7*24*3600*1000
	return raiseScript.Run(ctx, r.client, []string{r.key(k)}, period.UnixMicro(), used, ttl).Err()
}

// countScript adds a call that happened: KEYS are the checks' counters;
// ARGV[1] is now in µs ("" for Redis' clock), ARGV[2] the call's time in
// µs, ARGV[3] the cost, then per check: kind (w or q), the slot width
// in µs (w) or the period's start in µs (q), the period's end in µs (q;
// 0 for w) and the key's time to live in ms. It answers per check:
// used, seeded (1/0), reset µs.
var countScript = redis.NewScript(scriptNow + `
local at = math.min(tonumber(ARGV[2]), now)
local cost = tonumber(ARGV[3])
local out = {}
for i = 1, #KEYS do
  local a = 4 + (i - 1) * 4
  local kind, p, e = ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  if kind == 'w' then
    local head = math.floor(now / p)
    local s = math.floor(at / p)
    if s >= head - 60 and cost > 0 then
      redis.call('HINCRBY', KEYS[i], tostring(s), cost)
      redis.call('PEXPIRE', KEYS[i], ARGV[a + 3])
    end
    local kv = redis.call('HGETALL', KEYS[i])
    local used, first = 0, nil
    for j = 1, #kv, 2 do
      local sl = tonumber(kv[j])
      if sl >= head - 60 then
        used = used + tonumber(kv[j + 1])
        if not first or sl < first then first = sl end
      end
    end
    out[#out + 1] = used
    out[#out + 1] = 1
    out[#out + 1] = ((first or head) + 61) * p
  else
    local v = redis.call('HMGET', KEYS[i], 'p', 'u')
    if not v[1] or tonumber(v[1]) ~= p then
      out[#out + 1] = 0
      out[#out + 1] = 0
    else
      local used = tonumber(v[2])
      if at >= p and at < e then
        used = redis.call('HINCRBY', KEYS[i], 'u', cost)
      end
      out[#out + 1] = used
      out[#out + 1] = 1
    end
    out[#out + 1] = e
  end
end
local res = {}
for _, x in ipairs(out) do res[#res + 1] = tostring(x) end
return res
`)

// Count implements Backend: one script call per item, all of them in
// one pipeline.
func (r *Redis) Count(ctx context.Context, now time.Time, items []Counted) error {
	if len(items) == 0 {
		return nil
	}
	clock := ""
	if r.ClientClock {
		clock = strconv.FormatInt(now.UnixMicro(), 10)
	}
	cmds, err := r.countPipelined(ctx, clock, items)
	if err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") {
		// Called by its digest: Redis loads it once (and again after a
		// restart of the server), not on every call.
		if err := countScript.Load(ctx, r.client).Err(); err != nil {
			return err
		}
		cmds, err = r.countPipelined(ctx, clock, items)
	}
	if err != nil {
		return err
	}
	return r.countStates(cmds, items)
}

// countPipelined sends one count script call per item, in one pipeline.
func (r *Redis) countPipelined(ctx context.Context, clock string, items []Counted) ([]*redis.Cmd, error) {
	pipe := r.client.Pipeline()
	cmds := make([]*redis.Cmd, len(items))
	for i := range items {
		it := &items[i]
		keys := make([]string, len(it.Checks))
		args := make([]any, 0, 3+4*len(it.Checks))
		args = append(args, clock, it.At.UnixMicro(), it.Cost)
		for j, c := range it.Checks {
			keys[j] = r.key(c.Key)
			if c.Window > 0 {
				ttl := c.Window.Milliseconds() + c.Window.Milliseconds()/windowSlots + 1000
				args = append(args, "w", max(c.Window.Microseconds()/windowSlots, 1), 0, ttl)
			} else {
				args = append(args, "q", c.PeriodStart.UnixMicro(), c.PeriodEnd.UnixMicro(), 0)
			}
		}
		cmds[i] = countScript.EvalSha(ctx, pipe, keys, args...)
	}
	_, err := pipe.Exec(ctx)
	return cmds, err
}

// countStates reads the answers of a count pipeline into items.
func (r *Redis) countStates(cmds []*redis.Cmd, items []Counted) error {
	for i, cmd := range cmds {
		it := &items[i]
		res, err := cmd.StringSlice()
		if err != nil {
			return err
		}
		if len(res) != 3*len(it.Checks) {
			return errors.New("limits: unexpected answer from redis")
		}
		if len(it.States) < len(it.Checks) {
			it.States = make([]State, len(it.Checks))
		}
		for j := range it.Checks {
			used, _ := strconv.ParseFloat(res[3*j], 64)
			reset, _ := strconv.ParseFloat(res[3*j+2], 64)
			it.States[j] = State{Used: uint64(used), Unseeded: res[3*j+1] == "0", Reset: time.UnixMicro(int64(reset)).UTC()}
		}
	}
	return nil
}
