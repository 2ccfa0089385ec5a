package producer

import (
	"errors"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"
)

// AppendJSON appends the record as JSON, as MarshalJSON writes it, by
// hand: tracking encodes a record per request, and reflection costs more
// than the rest of the middleware. Metadata keys are written sorted.
func (r Record) AppendJSON(b []byte) ([]byte, error) {
	if math.IsNaN(r.ResponseTimeMs) || math.IsInf(r.ResponseTimeMs, 0) || math.IsNaN(r.Quantity) || math.IsInf(r.Quantity, 0) {
		return b, errors.New("producer: responseTimeMs and quantity must be finite numbers")
	}
	b = append(b, '{')
	str := func(name, v string, always bool) {
		if v == "" && !always {
			return
		}
		b = append(b, '"')
		b = append(b, name...)
		b = append(b, `":`...)
		b = appendJSONString(b, v)
		b = append(b, ',')
	}
	num := func(name string, v int64) {
		if v == 0 {
			return
		}
		b = append(b, '"')
		b = append(b, name...)
		b = append(b, `":`...)
		b = strconv.AppendInt(b, v, 10)
		b = append(b, ',')
	}
	str("id", r.ID, false)
	str("type", r.Type, false)
	str("tenantId", r.TenantID, false)
	str("userId", r.UserID, true)
	str("apiKeyId", r.APIKeyID, false)
	str("decisionId", r.DecisionID, false)
	str("endpoint", r.Endpoint, false)
	str("method", r.Method, false)
	num("statusCode", int64(r.StatusCode))
	num("requestBytes", r.RequestBytes)
	num("responseBytes", r.ResponseBytes)
	num("cost", int64(r.Cost))
	str("feature", r.Feature, false)
	if r.Quantity != 0 {
		b = append(b, `"quantity":`...)
		b = appendJSONFloat(b, r.Quantity)
		b = append(b, ',')
	}
	if len(r.Metadata) > 0 {
		b = append(b, `"metadata":{`...)
		keys := make([]string, 0, len(r.Metadata))
		for k := range r.Metadata {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = append(b, ':')
			b = appendJSONString(b, r.Metadata[k])
		}
		b = append(b, "},"...)
	}
	b = append(b, `"timestamp":"`...)
	b = r.Timestamp.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	b = append(b, '"')
	if r.Type != "feature" {
		b = append(b, `,"responseTimeMs":`...)
		b = appendJSONFloat(b, r.ResponseTimeMs)
	}
	return append(b, '}'), nil
}

// appendJSONFloat writes a finite float the way encoding/json does.
func appendJSONFloat(b []byte, f float64) []byte {
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		return strconv.AppendFloat(b, f, 'e', -1, 64)
	}
	return strconv.AppendFloat(b, f, 'f', -1, 64)
}

const hexDigits = "0123456789abcdef"

// appendJSONString writes s as a JSON string: quotes, backslashes and
// control characters escaped, invalid UTF-8 replaced by U+FFFD, and
// U+2028 and U+2029 escaped as encoding/json does.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
