package ingest

import (
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"

	"github.com/apimeter/apimeter/auth"
	"github.com/apimeter/apimeter/dims"
)

// Reason names why a record was rejected. Every rejection of the product
// contract has one; they travel with dead letters and in metrics.
type Reason string

const (
	ReasonTooLarge         Reason = "too_large"           // over MaxRecordBytes
	ReasonInvalidUTF8      Reason = "invalid_utf8"        // bytes that are not UTF-8
	ReasonMalformedJSON    Reason = "malformed_json"      // not JSON
	ReasonNotObject        Reason = "not_an_object"       // JSON, but not an object
	ReasonWrongType        Reason = "wrong_type"          // a field of the wrong JSON type
	ReasonMissingField     Reason = "missing_field"       // a required field absent or null
	ReasonInvalidValue     Reason = "invalid_value"       // right type, value out of bounds
	ReasonFieldTooLong     Reason = "field_too_long"      // a string over its length limit
	ReasonTooManyMetadata  Reason = "too_many_metadata"   // more than MaxMetadataKeys
	ReasonFutureTimestamp  Reason = "timestamp_in_future" // beyond the allowed clock skew
	ReasonExpiredTimestamp Reason = "timestamp_too_old"   // older than the retention
)

// Reasons lists every rejection reason.
var Reasons = []Reason{
	ReasonTooLarge, ReasonInvalidUTF8, ReasonMalformedJSON, ReasonNotObject, ReasonWrongType, ReasonMissingField,
	ReasonInvalidValue, ReasonFieldTooLong, ReasonTooManyMetadata, ReasonFutureTimestamp, ReasonExpiredTimestamp,
}

// Rejection says why a record was not accepted.
type Rejection struct {
	Reason Reason
	Field  string // the JSON field at fault, "" for the whole record
	Detail string
}

func (r *Rejection) Error() string {
	if r.Field == "" {
		return fmt.Sprintf("%s: %s", r.Reason, r.Detail)
	}
	return fmt.Sprintf("%s: %s: %s", r.Reason, r.Field, r.Detail)
}

func reject(reason Reason, field, format string, args ...any) *Rejection {
	return &Rejection{Reason: reason, Field: field, Detail: fmt.Sprintf(format, args...)}
}

// Limits of the record format.
const (
	MaxRecordBytes  = 64 << 10
	MaxMetadataKeys = 32
	MaxIDBytes      = 128
	// MaxResponseTimeMs bounds responseTimeMs (one day).
	MaxResponseTimeMs = 86_400_000
	// MaxCost bounds cost, what one call counts for against limits.
	MaxCost        = 1_000_000_000
	maxSafeInteger = 1 << 53
)

// Limits of metadata entries, in bytes.
const (
	maxMetadataKey   = 128
	maxMetadataValue = 1024
)

// Source is where a record came from, and the clock its timestamps are
// judged against.
type Source struct {
	Topic     string
	Partition int32
	Offset    int64
	// TimestampMs is the Kafka message's timestamp: the time the record
	// entered Kafka. It stands in for an absent record timestamp and is
	// "now" for the future/too-old checks, so decoding the same message
	// always gives the same answer.
	TimestampMs int64
}

// Policy holds the time bounds a record's timestamp must fall in.
type Policy struct {
	// FutureSkew is how far past Source.TimestampMs a record may be.
	// Default 5 minutes.
	FutureSkew time.Duration
	// Retention is how far before Source.TimestampMs a record may be.
	// Default 90 days.
	Retention time.Duration
	// Dimensions folds the declared custom dimensions of API calls'
	// metadata (nil: none declared).
	Dimensions *dims.Folder
	// Route maps an API call's endpoint to its route template, which is
	// then what the record carries (nil: the endpoint as sent). It is
	// called once per API call, from every partition's goroutine at once,
	// and must give one endpoint the same template every time: a replay
	// must make the rows its first load made. An empty template, or one
	// longer than an endpoint may be, leaves the endpoint as sent.
	Route func(endpoint string) string
}

func (p Policy) withDefaults() Policy {
	if p.FutureSkew <= 0 {
		p.FutureSkew = 5 * time.Minute
	}
	if p.Retention <= 0 {
		p.Retention = 90 * 24 * time.Hour
	}
	return p
}

// The fields the decoder reads, in the order they are validated.
const (
	fID = iota
	fType
	fTimestamp
	fTenantID
	fUserID
	fAPIKeyID
	fEndpoint
	fMethod
	fStatusCode
	fResponseTimeMs
	fRequestBytes
	fResponseBytes
	fFeature
	fQuantity
	fCost
	fMetadata
	fDecisionID
	numFields
)

var fieldNames = [numFields]string{
	"id", "type", "timestamp", "tenantId", "userId", "apiKeyId", "endpoint", "method", "statusCode",
	"responseTimeMs", "requestBytes", "responseBytes", "feature", "quantity", "cost", "metadata", "decisionId",
}

// maxLen bounds the string fields, in bytes.
var maxLen = [numFields]int{
	fID: MaxIDBytes, fType: 16, fTenantID: auth.MaxNameBytes, fUserID: auth.MaxNameBytes, fAPIKeyID: 128, fEndpoint: 1024, fMethod: 16, fFeature: 256,
	fDecisionID: MaxIDBytes,
}

func fieldIndex(key []byte) int {
	// By length first: one string comparison per key.
	switch len(key) {
	case 2:
		if string(key) == "id" {
			return fID
		}
	case 4:
		switch string(key) {
		case "type":
			return fType
		case "cost":
			return fCost
		}
	case 6:
		switch string(key) {
		case "userId":
			return fUserID
		case "method":
			return fMethod
		}
	case 7:
		if string(key) == "feature" {
			return fFeature
		}
	case 8:
		switch string(key) {
		case "tenantId":
			return fTenantID
		case "apiKeyId":
			return fAPIKeyID
		case "endpoint":
			return fEndpoint
		case "metadata":
			return fMetadata
		case "quantity":
			return fQuantity
		}
	case 9:
		if string(key) == "timestamp" {
			return fTimestamp
		}
	case 10:
		switch string(key) {
		case "statusCode":
			return fStatusCode
		case "decisionId":
			return fDecisionID
		}
	case 12:
		if string(key) == "requestBytes" {
			return fRequestBytes
		}
	case 13:
		if string(key) == "responseBytes" {
			return fResponseBytes
		}
	case 14:
		if string(key) == "responseTimeMs" {
			return fResponseTimeMs
		}
	}
	return -1
}

// jsonKind is the JSON type of a value.
type jsonKind uint8

const (
	kNull jsonKind = iota
	kString
	kNumber
	kBool
	kObject
	kArray
)

var kindNames = [...]string{"null", "string", "number", "boolean", "object", "array"}

// span is a scanned value: its kind and where it lies (a string's span
// excludes the quotes; esc says it holds escapes).
type span struct {
	kind  jsonKind
	start int
	end   int
	esc   bool
}

// fieldValue is a field as validation sees it, whoever parsed it: its JSON
// kind, a string's unescaped bytes or a number's text, and an object's
// members in document order.
type fieldValue struct {
	set     bool
	kind    jsonKind
	text    []byte
	members []member
}

type member struct {
	key []byte
	val fieldValue
}

// Decoder decodes records. It keeps a table of the low-cardinality strings
// it has seen (tenants, endpoints, methods, metadata keys) so they are
// allocated once; a Decoder is not safe for concurrent use.
type Decoder struct {
	Policy Policy
	intern map[string]string
}

// NewDecoder makes a decoder.
func NewDecoder(p Policy) *Decoder {
	return &Decoder{Policy: p.withDefaults(), intern: make(map[string]string)}
}

func (d *Decoder) internString(b []byte) string {
	if s, ok := d.intern[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(d.intern) < 100_000 {
		d.intern[s] = s
	}
	return s
}

// Decode parses and validates one record. On success it fills r and
// returns nil; otherwise r is undefined and the Rejection says why. It is
// a pure function of its arguments. Strings in r may share data's bytes:
// data must not change afterwards.
func Decode(data []byte, src Source, p Policy, r *Record) *Rejection {
	return NewDecoder(p).Decode(data, src, r)
}

// Decode parses and validates one record; see the package function.
func (d *Decoder) Decode(data []byte, src Source, r *Record) *Rejection {
	if rej := checkBytes(data); rej != nil {
		return rej
	}
	var fields [numFields]fieldValue
	s := scanner{data: data}
	s.skipSpace()
	if s.pos >= len(data) {
		return reject(ReasonMalformedJSON, "", "empty message")
	}
	if data[s.pos] != '{' {
		v, err := s.value()
		if err == nil {
			s.skipSpace()
			if s.pos == len(data) {
				return notObject(v.kind)
			}
			err = s.fail("unexpected data after the value")
		}
		return reject(ReasonMalformedJSON, "", "%s", err)
	}
	var members []member
	if err := s.object(func(key, val span) {
		i := fieldIndex(s.text(key))
		if i < 0 {
			return
		}
		fields[i] = fieldValue{set: true, kind: val.kind, text: s.text(val)}
		if i == fMetadata && val.kind == kObject {
			members = members[:0]
			sub := scanner{data: data, pos: val.start}
			sub.object(func(k, v span) {
				members = append(members, member{key: sub.text(k), val: fieldValue{set: true, kind: v.kind, text: sub.text(v)}})
			})
			fields[i].members = members
		}
	}); err != nil {
		return reject(ReasonMalformedJSON, "", "%s", err)
	}
	s.skipSpace()
	if s.pos != len(data) {
		return reject(ReasonMalformedJSON, "", "%s", s.fail("unexpected data after the record"))
	}
	return d.validate(&fields, src, r)
}

// checkBytes applies the checks on raw bytes, before any parsing.
func checkBytes(data []byte) *Rejection {
	if len(data) > MaxRecordBytes {
		return reject(ReasonTooLarge, "", "%d bytes, the limit is %d", len(data), MaxRecordBytes)
	}
	if !utf8.Valid(data) {
		return reject(ReasonInvalidUTF8, "", "the record is not valid UTF-8")
	}
	return nil
}

func notObject(k jsonKind) *Rejection {
	return reject(ReasonNotObject, "", "the record is a JSON %s, want an object", kindNames[k])
}

// validate converts the fields into r, checking them in field order.
func (d *Decoder) validate(f *[numFields]fieldValue, src Source, r *Record) *Rejection {
	*r = Record{Topic: src.Topic, Partition: src.Partition, Offset: src.Offset, IngestedAtMs: src.TimestampMs}
	str := func(i int, required bool, intern bool) (string, bool, *Rejection) {
		v := f[i]
		name := fieldNames[i]
		if !v.set || v.kind == kNull {
			if required {
				return "", false, reject(ReasonMissingField, name, "required")
			}
			return "", false, nil
		}
		if v.kind != kString {
			return "", false, reject(ReasonWrongType, name, "got a %s, want a string", kindNames[v.kind])
		}
		if len(v.text) > maxLen[i] {
			return "", false, reject(ReasonFieldTooLong, name, "%d bytes, the limit is %d", len(v.text), maxLen[i])
		}
		if intern {
			return d.internString(v.text), true, nil
		}
		return alias(v.text), true, nil
	}
	num := func(i int, required bool) (float64, bool, *Rejection) {
		v := f[i]
		name := fieldNames[i]
		if !v.set || v.kind == kNull {
			if required {
				return 0, false, reject(ReasonMissingField, name, "required")
			}
			return 0, false, nil
		}
		if v.kind != kNumber {
			return 0, false, reject(ReasonWrongType, name, "got a %s, want a number", kindNames[v.kind])
		}
		x, ok := smallInt(v.text)
		if !ok {
			var err error
			x, err = strconv.ParseFloat(string(v.text), 64)
			if err != nil || math.IsInf(x, 0) {
				return 0, false, reject(ReasonInvalidValue, name, "%s is out of range", v.text)
			}
		}
		return x, true, nil
	}
	integer := func(i int, required bool, lo, hi float64) (int64, bool, *Rejection) {
		x, ok, rej := num(i, required)
		if rej != nil || !ok {
			return 0, ok, rej
		}
		if x != math.Trunc(x) {
			return 0, false, reject(ReasonInvalidValue, fieldNames[i], "%v is not a whole number", x)
		}
		if x < lo || x > hi {
			return 0, false, reject(ReasonInvalidValue, fieldNames[i], "%v is outside %v to %v", x, lo, hi)
		}
		return int64(x), true, nil
	}

	var rej *Rejection
	var ok bool
	if r.ID, ok, rej = str(fID, false, false); rej != nil {
		return rej
	} else if ok && r.ID == "" {
		return reject(ReasonInvalidValue, "id", "must not be empty")
	} else if !ok {
		r.ID = fmt.Sprintf("kafka:%s:%d:%d", src.Topic, src.Partition, src.Offset)
	}
	if r.Type, ok, rej = str(fType, false, true); rej != nil {
		return rej
	} else if !ok {
		r.Type = TypeAPICall
	} else if r.Type != TypeAPICall && r.Type != TypeFeature {
		return reject(ReasonInvalidValue, "type", "%q: want %q or %q", r.Type, TypeAPICall, TypeFeature)
	}
	if rej = d.timestamp(f[fTimestamp], src, r); rej != nil {
		return rej
	}
	// Tenant and user ids follow the one rule the API names them by
	// (auth.ValidName): a record stored here can always be asked about.
	if r.TenantID, ok, rej = str(fTenantID, false, true); rej != nil {
		return rej
	} else if !ok || r.TenantID == "" {
		r.TenantID = "default"
	} else if p := auth.NameProblem(r.TenantID); p != "" {
		return reject(ReasonInvalidValue, "tenantId", "%s", p)
	} else if r.TenantID == auth.AllTenants {
		return reject(ReasonInvalidValue, "tenantId", "%q is reserved: it means every tenant", auth.AllTenants)
	}
	if r.UserID, _, rej = str(fUserID, true, false); rej != nil {
		return rej
	} else if p := auth.NameProblem(r.UserID); p != "" {
		return reject(ReasonInvalidValue, "userId", "%s", p)
	}
	if r.APIKeyID, _, rej = str(fAPIKeyID, false, false); rej != nil {
		return rej
	}
	api := r.Type == TypeAPICall
	if r.Endpoint, _, rej = str(fEndpoint, api, true); rej != nil {
		return rej
	} else if api && r.Endpoint == "" {
		return reject(ReasonInvalidValue, "endpoint", "must not be empty")
	} else if api && d.Policy.Route != nil {
		if tpl := d.Policy.Route(r.Endpoint); tpl != "" && len(tpl) <= maxLen[fEndpoint] {
			r.Endpoint = tpl
		}
	}
	if api {
		var m string
		if m, _, rej = str(fMethod, true, true); rej != nil {
			return rej
		}
		if r.Method, rej = normalizeMethod(m); rej != nil {
			return rej
		}
		status, _, rej := integer(fStatusCode, true, 100, 599)
		if rej != nil {
			return rej
		}
		r.StatusCode = uint16(status)
		ms, _, rej := num(fResponseTimeMs, true)
		if rej != nil {
			return rej
		}
		if ms < 0 || ms > MaxResponseTimeMs {
			return reject(ReasonInvalidValue, "responseTimeMs", "%v is outside 0 to %d", ms, MaxResponseTimeMs)
		}
		r.ResponseTimeUs = uint64(math.Round(ms * 1000))
		n, _, rej := integer(fRequestBytes, false, 0, maxSafeInteger)
		if rej != nil {
			return rej
		}
		r.RequestBytes = uint64(n)
		if n, _, rej = integer(fResponseBytes, false, 0, maxSafeInteger); rej != nil {
			return rej
		}
		r.ResponseBytes = uint64(n)
		r.Cost = 1
		if n, ok, rej = integer(fCost, false, 0, MaxCost); rej != nil {
			return rej
		} else if ok {
			r.Cost = uint32(n)
		}
	} else {
		if r.Feature, _, rej = str(fFeature, true, true); rej != nil {
			return rej
		} else if r.Feature == "" {
			return reject(ReasonInvalidValue, "feature", "must not be empty")
		}
		q, _, rej := num(fQuantity, true)
		if rej != nil {
			return rej
		}
		if !(q > 0) || q > 1e15 {
			return reject(ReasonInvalidValue, "quantity", "%v: want a number above 0 and at most 1e15", q)
		}
		r.Quantity = q
	}
	if rej = d.metadata(f[fMetadata], r); rej != nil {
		return rej
	}
	// A decision id names the limiter decision that counted the call
	// already; the id rule of tenants and users keeps it printable. Empty
	// names no decision, like an absent one.
	if r.DecisionID, _, rej = str(fDecisionID, false, false); rej != nil {
		return rej
	} else if r.DecisionID != "" {
		if p := auth.NameProblem(r.DecisionID); p != "" {
			return reject(ReasonInvalidValue, "decisionId", "%s", p)
		}
	}
	if api {
		r.Dimensions = d.Policy.Dimensions.Fold(r.TenantID, r.Metadata)
	}
	return nil
}

// smallInt reads the common number: up to 15 digits, no sign, fraction
// or exponent (exact in a float64). Anything else goes to ParseFloat.
func smallInt(b []byte) (float64, bool) {
	if len(b) == 0 || len(b) > 15 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return float64(n), true
}

// parseUTCMillis reads the usual shape of a timestamp,
// "YYYY-MM-DDTHH:MM:SS[.fraction]Z", as Unix milliseconds, without
// time.Parse. Anything else (offsets, odd forms) is left to time.Parse,
// which gives the same answer where both accept.
func parseUTCMillis(b []byte) (int64, bool) {
	if len(b) < 20 || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' || b[len(b)-1] != 'Z' {
		return 0, false
	}
	num := func(s []byte) (int, bool) {
		n := 0
		for _, c := range s {
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	year, ok1 := num(b[0:4])
	month, ok2 := num(b[5:7])
	day, ok3 := num(b[8:10])
	hour, ok4 := num(b[11:13])
	minute, ok5 := num(b[14:16])
	sec, ok6 := num(b[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || month < 1 || month > 12 || day < 1 ||
		day > daysIn(month, year) || hour > 23 || minute > 59 || sec > 59 {
		return 0, false
	}
	ms := 0
	if frac := b[19 : len(b)-1]; len(frac) > 0 {
		if frac[0] != '.' || len(frac) < 2 || len(frac) > 10 {
			return 0, false
		}
		digits := frac[1:]
		f, ok := num(digits)
		if !ok {
			return 0, false
		}
		for i := len(digits); i < 3; i++ {
			f *= 10
		}
		for i := len(digits); i > 3; i-- {
			f /= 10
		}
		ms = f
	}
	days := daysFromCivil(year, month, day)
	return ((days*24+int64(hour))*60+int64(minute))*60_000 + int64(sec)*1000 + int64(ms), true
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil counts days from 1970-01-01 to a proleptic Gregorian date.
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 {
		era = (y - 399) / 400
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era*146097 + doe - 719468)
}

// alias is b as a string without a copy. Decoded strings share the
// message's bytes (or a fresh unescape buffer), which nothing writes to
// afterwards: a record keeps its message's bytes alive, and a batch holds
// both until it is loaded anyway.
func alias(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}

func normalizeMethod(m string) (string, *Rejection) {
	if m == "" {
		return "", reject(ReasonInvalidValue, "method", "must not be empty")
	}
	upper := true
	for i := 0; i < len(m); i++ {
		c := m[i]
		switch {
		case c >= 'A' && c <= 'Z':
		case c >= 'a' && c <= 'z':
			upper = false
		default:
			return "", reject(ReasonInvalidValue, "method", "%q: want letters only", m)
		}
	}
	if upper {
		return m, nil
	}
	b := []byte(m)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b), nil
}

func (d *Decoder) timestamp(v fieldValue, src Source, r *Record) *Rejection {
	switch {
	case !v.set || v.kind == kNull:
		r.EventTimeMs = src.TimestampMs
		return nil
	case v.kind == kString:
		ms, ok := parseUTCMillis(v.text)
		if !ok {
			t, err := time.Parse(time.RFC3339Nano, string(v.text))
			if err != nil {
				return reject(ReasonInvalidValue, "timestamp", "%q is not an RFC 3339 time", v.text)
			}
			ms = t.UnixMilli()
		}
		r.EventTimeMs = ms
	case v.kind == kNumber:
		x, err := strconv.ParseFloat(string(v.text), 64)
		if err != nil || x != math.Trunc(x) || x < 0 || x > 1e14 {
			return reject(ReasonInvalidValue, "timestamp", "%s is not epoch milliseconds", v.text)
		}
		r.EventTimeMs = int64(x)
	default:
		return reject(ReasonWrongType, "timestamp", "got a %s, want a string or a number", kindNames[v.kind])
	}
	if lim := src.TimestampMs + d.Policy.FutureSkew.Milliseconds(); r.EventTimeMs > lim {
		return reject(ReasonFutureTimestamp, "timestamp", "%s is more than %s after the record reached Kafka (%s)",
			time.UnixMilli(r.EventTimeMs).UTC().Format(time.RFC3339Nano), d.Policy.FutureSkew, time.UnixMilli(src.TimestampMs).UTC().Format(time.RFC3339Nano))
	}
	if lim := src.TimestampMs - d.Policy.Retention.Milliseconds(); r.EventTimeMs < lim {
		return reject(ReasonExpiredTimestamp, "timestamp", "%s is older than the retention (%s)",
			time.UnixMilli(r.EventTimeMs).UTC().Format(time.RFC3339Nano), d.Policy.Retention)
	}
	return nil
}

func (d *Decoder) metadata(v fieldValue, r *Record) *Rejection {
	if !v.set || v.kind == kNull {
		return nil
	}
	if v.kind != kObject {
		return reject(ReasonWrongType, "metadata", "got a %s, want an object of strings", kindNames[v.kind])
	}
	if len(v.members) == 0 {
		return nil
	}
	m := make(map[string]string, len(v.members))
	for _, mb := range v.members {
		if mb.val.kind != kString {
			return reject(ReasonWrongType, "metadata", "value of %q: got a %s, want a string", mb.key, kindNames[mb.val.kind])
		}
		if len(mb.key) == 0 || len(mb.key) > maxMetadataKey {
			return reject(ReasonInvalidValue, "metadata", "key %.40q: want 1 to %d bytes", mb.key, maxMetadataKey)
		}
		if len(mb.val.text) > maxMetadataValue {
			return reject(ReasonFieldTooLong, "metadata", "value of %q: %d bytes, the limit is %d", mb.key, len(mb.val.text), maxMetadataValue)
		}
		m[d.internString(mb.key)] = alias(mb.val.text)
	}
	if len(m) > MaxMetadataKeys {
		return reject(ReasonTooManyMetadata, "metadata", "%d keys, the limit is %d", len(m), MaxMetadataKeys)
	}
	r.Metadata = m
	return nil
}

// scanner walks JSON text. It checks syntax fully (as encoding/json
// does) but converts nothing; values are returned as spans.
type scanner struct {
	data  []byte
	pos   int
	depth int
}

// maxDepth bounds nesting, as encoding/json does.
const maxDepth = 10000

type syntaxError struct {
	msg string
	at  int
}

func (e *syntaxError) Error() string { return fmt.Sprintf("%s at byte %d", e.msg, e.at) }

func (s *scanner) fail(msg string) error { return &syntaxError{msg: msg, at: s.pos} }

// text is a value's bytes: a string's unescaped contents, or the value's
// JSON text otherwise.
func (s *scanner) text(v span) []byte {
	b := s.data[v.start:v.end]
	if v.esc {
		return unescape(make([]byte, 0, len(b)), b)
	}
	return b
}

func (s *scanner) skipSpace() {
	i, d := s.pos, s.data
	for i < len(d) && (d[i] == ' ' || d[i] == '\n' || d[i] == '\t' || d[i] == '\r') {
		i++
	}
	s.pos = i
}

// object scans an object at s.pos, calling fn for every member.
func (s *scanner) object(fn func(key, val span)) error {
	if s.depth++; s.depth > maxDepth {
		return s.fail("nested too deeply")
	}
	defer func() { s.depth-- }()
	s.pos++ // '{'
	s.skipSpace()
	if s.pos < len(s.data) && s.data[s.pos] == '}' {
		s.pos++
		return nil
	}
	for {
		s.skipSpace()
		if s.pos >= len(s.data) || s.data[s.pos] != '"' {
			return s.fail("want a quoted field name")
		}
		key, err := s.str()
		if err != nil {
			return err
		}
		s.skipSpace()
		if s.pos >= len(s.data) || s.data[s.pos] != ':' {
			return s.fail("want ':' after a field name")
		}
		s.pos++
		s.skipSpace()
		val, err := s.value()
		if err != nil {
			return err
		}
		fn(key, val)
		s.skipSpace()
		if s.pos >= len(s.data) {
			return s.fail("unterminated object")
		}
		switch s.data[s.pos] {
		case ',':
			s.pos++
		case '}':
			s.pos++
			return nil
		default:
			return s.fail("want ',' or '}'")
		}
	}
}

// value scans any JSON value at s.pos.
func (s *scanner) value() (span, error) {
	if s.pos >= len(s.data) {
		return span{}, s.fail("want a value")
	}
	start := s.pos
	switch c := s.data[s.pos]; {
	case c == '"':
		return s.str()
	case c == '{':
		if err := s.object(func(span, span) {}); err != nil {
			return span{}, err
		}
		return span{kind: kObject, start: start, end: s.pos}, nil
	case c == '[':
		if s.depth++; s.depth > maxDepth {
			return span{}, s.fail("nested too deeply")
		}
		defer func() { s.depth-- }()
		s.pos++
		s.skipSpace()
		if s.pos < len(s.data) && s.data[s.pos] == ']' {
			s.pos++
			return span{kind: kArray, start: start, end: s.pos}, nil
		}
		for {
			s.skipSpace()
			if _, err := s.value(); err != nil {
				return span{}, err
			}
			s.skipSpace()
			if s.pos >= len(s.data) {
				return span{}, s.fail("unterminated array")
			}
			if s.data[s.pos] == ',' {
				s.pos++
				continue
			}
			if s.data[s.pos] == ']' {
				s.pos++
				return span{kind: kArray, start: start, end: s.pos}, nil
			}
			return span{}, s.fail("want ',' or ']'")
		}
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number()
	case c == 't':
		return s.literal("true", kBool)
	case c == 'f':
		return s.literal("false", kBool)
	case c == 'n':
		return s.literal("null", kNull)
	}
	return span{}, s.fail("want a value")
}

func (s *scanner) literal(word string, k jsonKind) (span, error) {
	if len(s.data)-s.pos < len(word) || string(s.data[s.pos:s.pos+len(word)]) != word {
		return span{}, s.fail("invalid literal")
	}
	start := s.pos
	s.pos += len(word)
	return span{kind: k, start: start, end: s.pos}, nil
}

// number scans a number with JSON's grammar:
// -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
func (s *scanner) number() (span, error) {
	start := s.pos
	d := s.data
	if d[s.pos] == '-' {
		s.pos++
	}
	digits := func() int {
		n := 0
		for s.pos < len(d) && d[s.pos] >= '0' && d[s.pos] <= '9' {
			s.pos++
			n++
		}
		return n
	}
	if s.pos < len(d) && d[s.pos] == '0' {
		s.pos++
	} else if digits() == 0 {
		return span{}, s.fail("invalid number")
	}
	if s.pos < len(d) && d[s.pos] == '.' {
		s.pos++
		if digits() == 0 {
			return span{}, s.fail("invalid number")
		}
	}
	if s.pos < len(d) && (d[s.pos] == 'e' || d[s.pos] == 'E') {
		s.pos++
		if s.pos < len(d) && (d[s.pos] == '+' || d[s.pos] == '-') {
			s.pos++
		}
		if digits() == 0 {
			return span{}, s.fail("invalid number")
		}
	}
	return span{kind: kNumber, start: start, end: s.pos}, nil
}

// str scans a string at s.pos; the span excludes the quotes.
func (s *scanner) str() (span, error) {
	d := s.data
	i := s.pos + 1 // past the opening quote
	start := i
	esc := false
	for {
		// Most bytes are plain: skip them in a tight loop on a local index.
		for i < len(d) && plain[d[i]] {
			i++
		}
		if i >= len(d) {
			s.pos = i
			return span{}, s.fail("unterminated string")
		}
		switch c := d[i]; {
		case c == '"':
			s.pos = i + 1
			return span{kind: kString, start: start, end: i, esc: esc}, nil
		case c == '\\':
			esc = true
			i++
			if i >= len(d) {
				s.pos = i
				return span{}, s.fail("unterminated string")
			}
			switch d[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				if len(d)-i < 5 || !isHex4(d[i+1:i+5]) {
					s.pos = i
					return span{}, s.fail("invalid \\u escape")
				}
				i += 5
			default:
				s.pos = i
				return span{}, s.fail("invalid escape")
			}
		default: // a control character
			s.pos = i
			return span{}, s.fail("control character in string")
		}
	}
}

// plain marks the bytes a string may hold without a second look.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func isHex4(b []byte) bool {
	for _, c := range b[:4] {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		default:
			r |= rune(c - 'A' + 10)
		}
	}
	return r
}

// unescape decodes a scanned string's escapes into dst. Lone surrogates
// become U+FFFD, as encoding/json decodes them.
func unescape(dst, b []byte) []byte {
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c != '\\' {
			dst = append(dst, c)
			continue
		}
		i++
		switch b[i] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := hex4(b[i+1:])
			i += 4
			if utf16.IsSurrogate(r) {
				if i+6 < len(b) && b[i+1] == '\\' && b[i+2] == 'u' {
					if r2 := hex4(b[i+3:]); utf16.DecodeRune(r, r2) != utf8.RuneError {
						r = utf16.DecodeRune(r, r2)
						i += 6
						dst = utf8.AppendRune(dst, r)
						continue
					}
				}
				r = utf8.RuneError
			}
			dst = utf8.AppendRune(dst, r)
		default: // '"', '\\', '/'
			dst = append(dst, b[i])
		}
	}
	return dst
}
