package ingest

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/apimeter/apimeter/dims"
	"github.com/apimeter/apimeter/ingest/producer"
)

var src = Source{Topic: "api-usage", Partition: 3, Offset: 1200, TimestampMs: time.Date(2026, 11, 27, 10, 0, 1, 0, time.UTC).UnixMilli()}

const contractExample = `{
  "id": "0193a3c4-8f0e-7c2a-9d51-6b2f0e8a1c77",
  "type": "api_call",
  "timestamp": "2026-11-27T10:00:00.123Z",
  "tenantId": "tenant-123",
  "userId": "user-42",
  "apiKeyId": "key_7f3a",
  "endpoint": "/api/users/:id",
  "method": "GET",
  "statusCode": 200,
  "responseTimeMs": 45,
  "requestBytes": 512,
  "responseBytes": 2048,
  "metadata": {"filtered": "true"}
}`

func TestDecodeContractExample(t *testing.T) {
	var r Record
	require.Nil(t, Decode([]byte(contractExample), src, Policy{}, &r))
	require.Equal(t, Record{
		ID: "0193a3c4-8f0e-7c2a-9d51-6b2f0e8a1c77", Type: TypeAPICall,
		EventTimeMs: time.Date(2026, 11, 27, 10, 0, 0, 123e6, time.UTC).UnixMilli(), IngestedAtMs: src.TimestampMs,
		TenantID: "tenant-123", UserID: "user-42", APIKeyID: "key_7f3a", Endpoint: "/api/users/:id", Method: "GET",
		StatusCode: 200, ResponseTimeUs: 45000, RequestBytes: 512, ResponseBytes: 2048, Cost: 1,
		Metadata: map[string]string{"filtered": "true"},
		Topic:    "api-usage", Partition: 3, Offset: 1200,
	}, r)
}

func TestDecodeCostAndDimensions(t *testing.T) {
	f := dims.NewFolder([]dims.Spec{{Name: "region", Type: dims.TypeString, Cap: 1}, {Name: "build", Type: dims.TypeInt, Cap: 10}}, nil)
	d := NewDecoder(Policy{Dimensions: f})
	dec := func(extra string) Record {
		var r Record
		rej := d.Decode([]byte(`{"tenantId":"t","userId":"u","endpoint":"/x","method":"GET","statusCode":200,"responseTimeMs":1`+extra+`}`), src, &r)
		require.Nil(t, rej, extra)
		return r
	}
	require.Equal(t, uint32(1), dec(``).Cost, "no cost counts 1")
	require.Equal(t, uint32(0), dec(`,"cost":0`).Cost)
	require.Equal(t, uint32(250), dec(`,"cost":250`).Cost)
	require.Equal(t, uint32(7), dec(`,"cost":7.0`).Cost)
	r := dec(`,"metadata":{"region":"eu","build":"0042","team":"a"}`)
	require.Equal(t, map[string]string{"region": "eu", "build": "42"}, r.Dimensions)
	require.Equal(t, map[string]string{"region": "eu", "build": "0042", "team": "a"}, r.Metadata, "metadata keeps what was sent")
	require.Equal(t, map[string]string{"region": dims.Other}, dec(`,"metadata":{"region":"us"}`).Dimensions, "past the cap of 1")
	require.Equal(t, map[string]string{"build": dims.Invalid}, dec(`,"metadata":{"build":"x"}`).Dimensions)
	require.Nil(t, dec(`,"metadata":{"team":"a"}`).Dimensions)
	var feat Record
	require.Nil(t, d.Decode([]byte(`{"type":"feature","userId":"u","feature":"f","quantity":2,"metadata":{"region":"eu"}}`), src, &feat))
	require.Nil(t, feat.Dimensions, "feature records have no dimensions")
	require.Zero(t, feat.Cost)
}

func TestDecodeDecisionID(t *testing.T) {
	d := NewDecoder(Policy{})
	dec := func(extra string) Record {
		var r Record
		rej := d.Decode([]byte(`{"userId":"u","endpoint":"/x","method":"GET","statusCode":200,"responseTimeMs":1`+extra+`}`), src, &r)
		require.Nil(t, rej, extra)
		return r
	}
	require.Equal(t, "dec_01J9Z", dec(`,"decisionId":"dec_01J9Z"`).DecisionID)
	long := strings.Repeat("d", 128)
	require.Equal(t, long, dec(`,"decisionId":"`+long+`"`).DecisionID, "128 bytes is the limit")
	require.Equal(t, "a b/ü", dec(`,"decisionId":"a b\/\u00fc"`).DecisionID, "escapes are decoded")
	require.Empty(t, dec(``).DecisionID)
	require.Empty(t, dec(`,"decisionId":null`).DecisionID)
	require.Empty(t, dec(`,"decisionId":""`).DecisionID, "empty names no decision")
	// A record decoded after one with an id does not keep it.
	dec(`,"decisionId":"first"`)
	require.Empty(t, dec(`,"id":"x"`).DecisionID)
}

func TestDecodeRoute(t *testing.T) {
	templates := map[string]string{"/users/42": "/users/:id", "/users/43": "/users/:id", "/blank": ""}
	var routed []string
	d := NewDecoder(Policy{Route: func(endpoint string) string {
		routed = append(routed, endpoint)
		if tpl, ok := templates[endpoint]; ok {
			return tpl
		}
		return endpoint
	}})
	var r Record
	call := func(endpoint string) string {
		require.Nil(t, d.Decode([]byte(`{"userId":"u","endpoint":`+strconv.Quote(endpoint)+`,"method":"GET","statusCode":200,"responseTimeMs":1}`), src, &r))
		return r.Endpoint
	}
	require.Equal(t, "/users/:id", call("/users/42"))
	require.Equal(t, "/users/:id", call("/users/43"))
	require.Equal(t, "/orders", call("/orders"), "an endpoint the function keeps")
	require.Equal(t, "/blank", call("/blank"), "an empty template leaves the endpoint as sent")
	require.Nil(t, d.Decode([]byte(`{"type":"feature","userId":"u","feature":"f","quantity":1,"endpoint":"/users/44"}`), src, &r))
	require.Equal(t, "/users/44", r.Endpoint, "feature records are not routed")
	require.Equal(t, []string{"/users/42", "/users/43", "/orders", "/blank"}, routed, "once per API call")
}

func TestDecodeDefaults(t *testing.T) {
	var r Record
	rej := Decode([]byte(`{"userId":"u","endpoint":"/x","method":"post","statusCode":201,"responseTimeMs":0.25,"extra":{"a":[1,2,{"b":null}]}}`), src, Policy{}, &r)
	require.Nil(t, rej)
	require.Equal(t, "kafka:api-usage:3:1200", r.ID, "an absent id comes from the Kafka coordinates")
	require.Equal(t, TypeAPICall, r.Type)
	require.Equal(t, "default", r.TenantID)
	require.Equal(t, src.TimestampMs, r.EventTimeMs, "an absent timestamp is the Kafka timestamp")
	require.Equal(t, "POST", r.Method)
	require.Equal(t, uint64(250), r.ResponseTimeUs, "sub-millisecond latencies are kept")
	require.Nil(t, r.Metadata)

	require.Nil(t, Decode([]byte(`{"userId":"u","endpoint":"/x","method":"GET","statusCode":200,"responseTimeMs":1,"timestamp":1795000000123}`),
		Source{TimestampMs: 1795000000000}, Policy{}, &r))
	require.Equal(t, int64(1795000000123), r.EventTimeMs, "epoch milliseconds")

	require.Nil(t, Decode([]byte(`{"type":"feature","userId":"u","feature":"export","quantity":2.5,"tenantId":"t"}`), src, Policy{}, &r))
	require.Equal(t, TypeFeature, r.Type)
	require.Equal(t, "export", r.Feature)
	require.Equal(t, 2.5, r.Quantity)

	require.Nil(t, Decode([]byte(`{"userId":"\u00fc\ud83d\ude00","endpoint":"/a\"b\\c\/d","method":"GET","statusCode":200,"responseTimeMs":1}`), src, Policy{}, &r))
	require.Equal(t, "ü😀", r.UserID)
	require.Equal(t, `/a"b\c/d`, r.Endpoint)
}

// TestRejectionCatalogue holds one bad record per contract rule.
func TestRejectionCatalogue(t *testing.T) {
	good := func(extra string) string {
		return `{"userId":"u","endpoint":"/x","method":"GET","statusCode":200,"responseTimeMs":5` + extra + `}`
	}
	for _, c := range []struct {
		name, in string
		reason   Reason
		field    string
	}{
		{"malformed JSON", `{"userId":"u",`, ReasonMalformedJSON, ""},
		{"trailing garbage", good("") + "x", ReasonMalformedJSON, ""},
		{"single quotes", `{'userId':'u'}`, ReasonMalformedJSON, ""},
		{"empty", ``, ReasonMalformedJSON, ""},
		{"array", `[1,2]`, ReasonNotObject, ""},
		{"string", `"hello"`, ReasonNotObject, ""},
		{"oversized", good(`,"pad":"` + strings.Repeat("x", MaxRecordBytes) + `"`), ReasonTooLarge, ""},
		{"invalid UTF-8", "{\"userId\":\"\xff\xfe\"}", ReasonInvalidUTF8, ""},
		{"missing userId", `{"endpoint":"/x","method":"GET","statusCode":200,"responseTimeMs":5}`, ReasonMissingField, "userId"},
		{"null userId", `{"userId":null,"endpoint":"/x","method":"GET","statusCode":200,"responseTimeMs":5}`, ReasonMissingField, "userId"},
		{"missing endpoint", `{"userId":"u","method":"GET","statusCode":200,"responseTimeMs":5}`, ReasonMissingField, "endpoint"},
		{"missing method", `{"userId":"u","endpoint":"/x","statusCode":200,"responseTimeMs":5}`, ReasonMissingField, "method"},
		{"missing status", `{"userId":"u","endpoint":"/x","method":"GET","responseTimeMs":5}`, ReasonMissingField, "statusCode"},
		{"missing latency", `{"userId":"u","endpoint":"/x","method":"GET","statusCode":200}`, ReasonMissingField, "responseTimeMs"},
		{"status as string", `{"userId":"u","endpoint":"/x","method":"GET","statusCode":"200","responseTimeMs":5}`, ReasonWrongType, "statusCode"},
		{"userId as number", `{"userId":42,"endpoint":"/x","method":"GET","statusCode":200,"responseTimeMs":5}`, ReasonWrongType, "userId"},
		{"metadata as array", good(`,"metadata":["a"]`), ReasonWrongType, "metadata"},
		{"cost as string", good(`,"cost":"3"`), ReasonWrongType, "cost"},
		{"negative cost", good(`,"cost":-1`), ReasonInvalidValue, "cost"},
		{"fractional cost", good(`,"cost":1.5`), ReasonInvalidValue, "cost"},
		{"cost past the bound", good(`,"cost":1000000001`), ReasonInvalidValue, "cost"},
		{"metadata number value", good(`,"metadata":{"a":1}`), ReasonWrongType, "metadata"},
		{"timestamp as bool", good(`,"timestamp":true`), ReasonWrongType, "timestamp"},
		{"status 999", `{"userId":"u","endpoint":"/x","method":"GET","statusCode":999,"responseTimeMs":5}`, ReasonInvalidValue, "statusCode"},
		{"status 99", `{"userId":"u","endpoint":"/x","method":"GET","statusCode":99,"responseTimeMs":5}`, ReasonInvalidValue, "statusCode"},
		{"fractional status", `{"userId":"u","endpoint":"/x","method":"GET","statusCode":200.5,"responseTimeMs":5}`, ReasonInvalidValue, "statusCode"},
		{"negative latency", `{"userId":"u","endpoint":"/x","method":"GET","statusCode":200,"responseTimeMs":-1}`, ReasonInvalidValue, "responseTimeMs"},
		{"huge number", `{"userId":"u","endpoint":"/x","method":"GET","statusCode":200,"responseTimeMs":1e400}`, ReasonInvalidValue, "responseTimeMs"},
		{"negative bytes", good(`,"requestBytes":-5`), ReasonInvalidValue, "requestBytes"},
		{"bad method", `{"userId":"u","endpoint":"/x","method":"GE T","statusCode":200,"responseTimeMs":5}`, ReasonInvalidValue, "method"},
		{"empty userId", `{"userId":"","endpoint":"/x","method":"GET","statusCode":200,"responseTimeMs":5}`, ReasonInvalidValue, "userId"},
		{"unknown type", good(`,"type":"click"`), ReasonInvalidValue, "type"},
		{"bad timestamp text", good(`,"timestamp":"yesterday"`), ReasonInvalidValue, "timestamp"},
		{"far future", good(`,"timestamp":"2026-11-27T10:06:00Z"`), ReasonFutureTimestamp, "timestamp"},
		{"too old", good(`,"timestamp":"2026-08-01T00:00:00Z"`), ReasonExpiredTimestamp, "timestamp"},
		{"id too long", good(`,"id":"` + strings.Repeat("i", MaxIDBytes+1) + `"`), ReasonFieldTooLong, "id"},
		{"empty id", good(`,"id":""`), ReasonInvalidValue, "id"},
		{"too many metadata keys", good(`,"metadata":{` + metadataKeys(MaxMetadataKeys+1) + `}`), ReasonTooManyMetadata, "metadata"},
		{"feature without quantity", `{"type":"feature","userId":"u","feature":"f"}`, ReasonMissingField, "quantity"},
		{"feature zero quantity", `{"type":"feature","userId":"u","feature":"f","quantity":0}`, ReasonInvalidValue, "quantity"},
		{"feature without name", `{"type":"feature","userId":"u","quantity":1}`, ReasonMissingField, "feature"},
		{"raw control char", "{\"userId\":\"a\tb\"}", ReasonMalformedJSON, ""},
		{"userId too long", good(`,"userId":"` + strings.Repeat("u", 129) + `"`), ReasonFieldTooLong, "userId"},
		{"tenantId too long", good(`,"tenantId":"` + strings.Repeat("t", 129) + `"`), ReasonFieldTooLong, "tenantId"},
		{"control character in userId", good(`,"userId":"a\u0007b"`), ReasonInvalidValue, "userId"},
		{"newline in tenantId", good(`,"tenantId":"a\nb"`), ReasonInvalidValue, "tenantId"},
		{"every tenant as a tenant", good(`,"tenantId":"*"`), ReasonInvalidValue, "tenantId"},
		{"decisionId too long", good(`,"decisionId":"` + strings.Repeat("d", 129) + `"`), ReasonFieldTooLong, "decisionId"},
		{"decisionId as number", good(`,"decisionId":12345`), ReasonWrongType, "decisionId"},
		{"decisionId as object", good(`,"decisionId":{"id":"d"}`), ReasonWrongType, "decisionId"},
		{"control character in decisionId", good(`,"decisionId":"d\u0000e"`), ReasonInvalidValue, "decisionId"},
		{"decisionId too long on a feature", `{"type":"feature","userId":"u","feature":"f","quantity":1,"decisionId":"` + strings.Repeat("d", 129) + `"}`, ReasonFieldTooLong, "decisionId"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var r Record
			rej := Decode([]byte(c.in), src, Policy{}, &r)
			require.NotNil(t, rej, "accepted: %+v", r)
			require.Equal(t, c.reason, rej.Reason, rej.Error())
			require.Equal(t, c.field, rej.Field, rej.Error())
			require.NotEmpty(t, rej.Detail)
			// The reference decoder agrees.
			ref := referenceDecode(NewDecoder(Policy{}), []byte(c.in), src, &r)
			require.NotNil(t, ref)
			require.Equal(t, rej.Reason, ref.Reason)
		})
	}
	// Exactly at the limits is fine, and so is any printable id.
	var r Record
	for _, name := range []string{strings.Repeat("u", 128), "se c'", "u/../x", "auth0|5f7c8ec7", "ü 🙂", `a"b\c`} {
		require.Nil(t, Decode([]byte(good(`,"tenantId":`+strconv.Quote(name)+`,"userId":`+strconv.Quote(name))), src, Policy{}, &r), "%q", name)
		require.Equal(t, name, r.UserID)
		require.Equal(t, name, r.TenantID)
	}
	require.Nil(t, Decode([]byte(good(`,"metadata":{`+metadataKeys(MaxMetadataKeys)+`},"id":"`+strings.Repeat("i", MaxIDBytes)+`"`)), src, Policy{}, &r))
	require.Nil(t, Decode([]byte(good(`,"timestamp":"2026-11-27T10:05:01Z"`)), src, Policy{}, &r))
}

func metadataKeys(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"k` + strings.Repeat("x", i) + `":"v"`)
	}
	return b.String()
}

// referenceDecode is the decoder built on encoding/json: slower, and
// obviously right about JSON. It feeds the same validation, so comparing
// the two tests the hand-written scanner.
func referenceDecode(d *Decoder, data []byte, src Source, r *Record) *Rejection {
	if rej := checkBytes(data); rej != nil {
		return rej
	}
	if !json.Valid(data) {
		return reject(ReasonMalformedJSON, "", "invalid JSON")
	}
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if trimmed[0] != '{' {
		return notObject(kindOf(trimmed))
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return reject(ReasonMalformedJSON, "", "%v", err)
	}
	var fields [numFields]fieldValue
	for name, msg := range raw {
		if i := fieldIndex([]byte(name)); i >= 0 {
			fields[i] = refValue(msg)
			if i == fMetadata && fields[i].kind == kObject {
				dec := json.NewDecoder(bytes.NewReader(msg))
				dec.Token() // {
				for dec.More() {
					k, _ := dec.Token()
					var v json.RawMessage
					dec.Decode(&v)
					fields[i].members = append(fields[i].members, member{key: []byte(k.(string)), val: refValue(v)})
				}
			}
		}
	}
	return d.validate(&fields, src, r)
}

func kindOf(b []byte) jsonKind {
	switch b[0] {
	case '"':
		return kString
	case '{':
		return kObject
	case '[':
		return kArray
	case 't', 'f':
		return kBool
	case 'n':
		return kNull
	}
	return kNumber
}

func refValue(msg json.RawMessage) fieldValue {
	v := fieldValue{set: true, kind: kindOf(msg), text: msg}
	if v.kind == kString {
		var s string
		json.Unmarshal(msg, &s)
		v.text = []byte(s)
	}
	return v
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		contractExample,
		`{"type":"feature","userId":"u","feature":"f","quantity":1}`,
		`{"userId":"u\u0000\ud800x","endpoint":"/","method":"get","statusCode":2e2,"responseTimeMs":1E-3,"metadata":{"a":"b","a":"c"}}`,
		`{"userId":"u","userId":7}`,
		`[{"userId":"u"}]`,
		`{"metadata":{"k":"v"},"metadata":null,"userId":"x","endpoint":"e","method":"M","statusCode":100,"responseTimeMs":0}`,
		"{\"a\":\"\\uD83D\\uDE00\\uDE00\"}",
		`{"userId":"u","endpoint":"/","method":"GET","statusCode":200,"responseTimeMs":1,"decisionId":"dec-\u00e9"}`,
		` { } `,
	} {
		f.Add([]byte(s))
	}
	dec, ref := NewDecoder(Policy{}), NewDecoder(Policy{})
	f.Fuzz(func(t *testing.T, data []byte) {
		var got, want Record
		gr := dec.Decode(data, src, &got)
		wr := referenceDecode(ref, data, src, &want)
		if (gr == nil) != (wr == nil) {
			t.Fatalf("decoder %v, reference %v, input %q", gr, wr, data)
		}
		if gr != nil {
			if gr.Reason != wr.Reason || gr.Field != wr.Field {
				t.Fatalf("decoder %v, reference %v, input %q", gr, wr, data)
			}
			return
		}
		require.Equal(t, want, got, "input %q", data)
	})
}

func BenchmarkDecode(b *testing.B) {
	d := NewDecoder(Policy{})
	data := []byte(contractExample)
	var r Record
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if rej := d.Decode(data, src, &r); rej != nil {
			b.Fatal(rej)
		}
	}
}

func BenchmarkDecodeCompact(b *testing.B) {
	d := NewDecoder(Policy{})
	var buf bytes.Buffer
	json.Compact(&buf, []byte(contractExample))
	data := buf.Bytes()
	var r Record
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if rej := d.Decode(data, src, &r); rej != nil {
			b.Fatal(rej)
		}
	}
}

func TestAppendJSONRoundTrips(t *testing.T) {
	g := NewGenerator(GeneratorConfig{Count: 2000, FeatureShare: 0.2, Start: time.UnixMilli(src.TimestampMs).Add(-time.Hour), Span: time.Hour})
	dec := NewDecoder(Policy{})
	var r, back Record
	for g.Next(&r) {
		data := r.AppendJSON(nil)
		require.True(t, json.Valid(data), "%s", data)
		s := Source{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, TimestampMs: src.TimestampMs}
		require.Nil(t, dec.Decode(data, s, &back), "%s", data)
		r.IngestedAtMs = src.TimestampMs
		require.Equal(t, r, back)
	}
}

// TestDecisionIDRoundTrips sends a decision id through both encoders of
// the record and the decoder.
func TestDecisionIDRoundTrips(t *testing.T) {
	dec := NewDecoder(Policy{})
	in := Record{ID: "r1", Type: TypeAPICall, EventTimeMs: src.TimestampMs - 1000, IngestedAtMs: src.TimestampMs,
		TenantID: "t1", UserID: "u1", Endpoint: "/a", Method: "GET", StatusCode: 200, ResponseTimeUs: 3000, Cost: 1,
		DecisionID: "dec_01J9Z3/ü", Topic: src.Topic, Partition: src.Partition, Offset: src.Offset}
	var back Record
	require.Nil(t, dec.Decode(in.AppendJSON(nil), src, &back))
	require.Equal(t, in, back)

	p := producer.Record{TenantID: "t1", UserID: "u1", Endpoint: "/a", Method: "GET", StatusCode: 200, ResponseTimeMs: 3,
		DecisionID: "dec 2\"x\"", Timestamp: time.UnixMilli(src.TimestampMs)}
	data, err := p.AppendJSON(nil)
	require.NoError(t, err)
	require.Nil(t, dec.Decode(data, src, &back), string(data))
	require.Equal(t, "dec 2\"x\"", back.DecisionID)
}

// FuzzTimestamp checks the fast timestamp path against time.Parse.
func FuzzTimestamp(f *testing.F) {
	for _, s := range []string{"2026-11-27T10:00:00.123Z", "2024-02-29T23:59:59Z", "2023-02-29T00:00:00Z", "1970-01-01T00:00:00.1Z",
		"2026-11-27T10:00:00.123456789Z", "2026-11-27T24:00:00Z", "0001-01-01T00:00:00Z", "2026-11-27T10:00:00.Z", "2026-13-01T00:00:00Z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := parseUTCMillis([]byte(s))
		if !ok {
			return
		}
		want, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatalf("%q: fast path accepted %d, time.Parse refused: %v", s, got, err)
		}
		if want.UnixMilli() != got {
			t.Fatalf("%q: fast path %d, time.Parse %d", s, got, want.UnixMilli())
		}
	})
}

func TestTimestampFastPathCovers(t *testing.T) {
	for _, s := range []string{"2026-11-27T10:00:00.123Z", "2024-02-29T23:59:59Z", "1970-01-01T00:00:00.1Z", "2026-11-27T10:00:00.123456789Z", "1969-12-31T23:59:59.999Z"} {
		got, ok := parseUTCMillis([]byte(s))
		require.True(t, ok, s)
		want, err := time.Parse(time.RFC3339Nano, s)
		require.NoError(t, err)
		require.Equal(t, want.UnixMilli(), got, s)
	}
	for _, s := range []string{"2023-02-29T00:00:00Z", "2026-11-27T24:00:00Z", "2026-11-27T10:00:00+01:00", "2026-11-27 10:00:00Z"} {
		_, ok := parseUTCMillis([]byte(s))
		require.False(t, ok, s)
	}
}

// BenchmarkDecodeDimensions decodes a record with three metadata keys,
// two of them declared dimensions (folded), and without declarations.
func BenchmarkDecodeDimensions(b *testing.B) {
	data := []byte(`{"id":"0193a3c4-8f0e-7c2a-9d51-6b2f0e8a1c77","timestamp":"2026-11-27T10:00:00.123Z","tenantId":"tenant-123","userId":"user-42","endpoint":"/api/users/:id","method":"GET","statusCode":200,"responseTimeMs":45,"cost":3,"metadata":{"region":"eu-west","build":"0412","filtered":"true"}}`)
	for _, c := range []struct {
		name string
		f    *dims.Folder
	}{
		{"undeclared", nil},
		{"declared", dims.NewFolder([]dims.Spec{{Name: "region", Type: dims.TypeString, Cap: 50}, {Name: "build", Type: dims.TypeInt, Cap: 100}}, nil)},
	} {
		b.Run(c.name, func(b *testing.B) {
			d := NewDecoder(Policy{Dimensions: c.f})
			var r Record
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if rej := d.Decode(data, src, &r); rej != nil {
					b.Fatal(rej)
				}
			}
		})
	}
}
