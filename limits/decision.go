package limits

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Decision ids let a call be counted once when apimeter both decides it
// and later hears of it: a decision that counted a call names it, the
// answer carries the name (X-Apimeter-Decision), the usage record of
// the call may carry it back (decisionId), and the ingester leaves out
// of the counters every record whose name checks out for the record's
// tenant and user — the decision counted those already.
//
// A name is "d_" and 32 base64url characters: the issue time in
// milliseconds (6 bytes), a random nonce (6 bytes) and an HMAC-SHA256
// over tenant, user and both (12 bytes), keyed by a secret every replica
// shares. A producer cannot make up names that skip the counters, nor
// move one to another user.

// HeaderDecision carries a decision's id in answers.
const HeaderDecision = "X-Apimeter-Decision"

// ContextDecision is the echo context key the middleware puts a counted
// decision's id under, for a tracking middleware to copy into the
// call's usage record.
const ContextDecision = "apimeter.decision"

const (
	decisionPrefix = "d_"
	decisionRaw    = 6 + 6 + 12
	// DecisionIDLen is the length of a decision id.
	DecisionIDLen = len(decisionPrefix) + decisionRaw*4/3
	// decisionMaxAge bounds how old a decision a record may name: a
	// billing period and a little more (records of older calls no
	// longer touch a counter anyway).
	decisionMaxAge = 40 * 24 * time.Hour
)

// Decisions issues and checks decision ids.
type Decisions struct {
	macs sync.Pool // hash.Hash (HMAC-SHA256 under the secret)
	now  func() time.Time
}

// NewDecisions issues ids under secret (at least 16 bytes).
func NewDecisions(secret []byte) (*Decisions, error) {
	if len(secret) < 16 {
		return nil, errors.New("limits: the decision secret needs at least 16 bytes")
	}
	key := append([]byte(nil), secret...)
	d := &Decisions{now: time.Now}
	d.macs.New = func() any { return hmac.New(sha256.New, key) }
	return d, nil
}

// NewSecret makes a random secret for NewDecisions.
func NewSecret() []byte {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return b
}

func (d *Decisions) sum(dst []byte, tenant, user string, head []byte) {
	m := d.macs.Get().(hash.Hash)
	m.Reset()
	var n [2]byte
	binary.BigEndian.PutUint16(n[:], uint16(min(len(tenant), 0xffff)))
	m.Write(n[:])
	m.Write([]byte(tenant))
	m.Write([]byte(user))
	m.Write(head)
	var out [sha256.Size]byte
	copy(dst, m.Sum(out[:0]))
	d.macs.Put(m)
}

// Issue names a decision made at for tenant's user.
func (d *Decisions) Issue(tenant, user string, at time.Time) string {
	var raw [decisionRaw]byte
	ms := uint64(at.UnixMilli())
	for i := 0; i < 6; i++ {
		raw[5-i] = byte(ms >> (8 * i))
	}
	_, _ = rand.Read(raw[6:12])
	d.sum(raw[12:], tenant, user, raw[:12])
	out := make([]byte, DecisionIDLen)
	copy(out, decisionPrefix)
	base64.RawURLEncoding.Encode(out[len(decisionPrefix):], raw[:])
	return string(out)
}

// Verify says id names a decision issued for tenant's user within the
// last 40 days (and not more than five minutes ahead of this clock).
func (d *Decisions) Verify(tenant, user, id string) bool {
	if len(id) != DecisionIDLen || id[:len(decisionPrefix)] != decisionPrefix {
		return false
	}
	var raw [decisionRaw]byte
	if n, err := base64.RawURLEncoding.Decode(raw[:], []byte(id[len(decisionPrefix):])); err != nil || n != decisionRaw {
		return false
	}
	var want [12]byte
	d.sum(want[:], tenant, user, raw[:12])
	if !hmac.Equal(want[:], raw[12:]) {
		return false
	}
	var ms uint64
	for i := 0; i < 6; i++ {
		ms = ms<<8 | uint64(raw[i])
	}
	at := time.UnixMilli(int64(ms))
	now := d.now()
	return !at.Before(now.Add(-decisionMaxAge)) && !at.After(now.Add(5*time.Minute))
}

// RedisDecisionSecret is the decision secret every replica sharing a
// Redis uses: the first to ask stores a random one (keys prefix +
// "decision-secret"), the others read it. Counters in Redis outlive a
// process, so decision ids must too; counters in memory do not, and a
// process without Redis uses a secret of its own (NewSecret), so that a
// record of a call decided before a restart — whose count the restart
// lost — counts again.
func RedisDecisionSecret(ctx context.Context, client redis.UniversalClient, prefix string) ([]byte, error) {
	if prefix == "" {
		prefix = "apimeter:"
	}
	key := prefix + "decision-secret"
	fresh := hex.EncodeToString(NewSecret())
	if err := client.SetNX(ctx, key, fresh, 0).Err(); err != nil {
		return nil, fmt.Errorf("store the decision secret in redis: %w", err)
	}
	v, err := client.Get(ctx, key).Result()
	if err != nil {
		return nil, fmt.Errorf("read the decision secret from redis: %w", err)
	}
	b, err := hex.DecodeString(v)
	if err != nil || len(b) < 16 {
		return nil, fmt.Errorf("redis key %s does not hold a decision secret apimeter wrote; delete it to make a new one", key)
	}
	return b, nil
}
