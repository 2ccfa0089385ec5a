package producer

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// reference encodes a record through encoding/json's reflection, the
// way records were encoded before AppendJSON.
func reference(r Record) ([]byte, error) {
	type plain Record
	w := struct {
		plain
		Timestamp      string   `json:"timestamp"`
		ResponseTimeMs *float64 `json:"responseTimeMs,omitempty"`
	}{plain: plain(r), Timestamp: r.Timestamp.UTC().Format("2006-01-02T15:04:05.000Z07:00")}
	if r.Type != "feature" {
		w.ResponseTimeMs = &r.ResponseTimeMs
	}
	return json.Marshal(w)
}

func sameJSON(t *testing.T, r Record) {
	t.Helper()
	got, err := r.AppendJSON(nil)
	require.NoError(t, err)
	want, err := reference(r)
	require.NoError(t, err)
	var g, w any
	require.NoError(t, json.Unmarshal(got, &g), string(got))
	require.NoError(t, json.Unmarshal(want, &w))
	require.Equal(t, w, g, "%s\n%s", got, want)
}

func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 4))
	pieces := []string{"", "a", "/api/users/:id", "ü", "日本", "\"", "\\", "\n\t\r", "\x00\x1f", "\u2028\u2029", "<&>", "\xff\xfe", "\xe2\x82", "é\x80"}
	s := func() string {
		var b strings.Builder
		for range rnd.IntN(4) {
			b.WriteString(pieces[rnd.IntN(len(pieces))])
		}
		return b.String()
	}
	for range 5000 {
		r := Record{ID: s(), TenantID: s(), UserID: s(), APIKeyID: s(), DecisionID: s(), Endpoint: s(), Method: s(),
			StatusCode: rnd.IntN(600), ResponseTimeMs: []float64{0, 0.001, 12.5, 1e-7, 3e21, rnd.Float64() * 1e4}[rnd.IntN(6)],
			RequestBytes: rnd.Int64N(1 << 40), ResponseBytes: rnd.Int64N(3), Timestamp: time.UnixMilli(rnd.Int64N(4e12))}
		if rnd.IntN(3) == 0 {
			r.Type, r.Feature, r.Quantity = "feature", s(), rnd.Float64()*100
		}
		if rnd.IntN(2) == 0 {
			r.Metadata = map[string]string{s(): s(), s(): s()}
		}
		sameJSON(t, r)
	}
}

func FuzzAppendJSON(f *testing.F) {
	f.Add("u", "/a", "GET", "k", "v", 12.5)
	f.Fuzz(func(t *testing.T, user, endpoint, method, k, v string, ms float64) {
		r := Record{UserID: user, Endpoint: endpoint, Method: method, ResponseTimeMs: ms, Metadata: map[string]string{k: v}, Timestamp: time.Unix(1, 0)}
		if _, err := reference(r); err != nil {
			_, err := r.AppendJSON(nil)
			require.Error(t, err)
			return
		}
		sameJSON(t, r)
	})
}

func TestDecisionIDRoundTrips(t *testing.T) {
	for _, id := range []string{"dec_01J9Z3", "a b/ü\"q\"", strings.Repeat("d", 128)} {
		in := Record{UserID: "u1", Endpoint: "/a", Method: "GET", StatusCode: 200, DecisionID: id, Timestamp: time.Unix(1, 0)}
		data, err := in.AppendJSON(nil)
		require.NoError(t, err)
		var back Record
		require.NoError(t, json.Unmarshal(data, &back), string(data))
		require.Equal(t, id, back.DecisionID, string(data))
	}
	data, err := Record{UserID: "u1"}.AppendJSON(nil)
	require.NoError(t, err)
	require.NotContains(t, string(data), "decisionId", "left out when empty")
}
