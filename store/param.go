package store

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Param binds a value to a {name:Type} placeholder in the SQL text. The
// engine parses Value with the placeholder's type, so a value can never
// change what a statement does.
type Param struct {
	Name  string
	Value string // the value's text form
	// escaped marks a Value already in the escaped text form (composite
	// values, whose elements are quoted literals).
	escaped bool
}

// NullParam binds NULL to a Nullable(…) placeholder.
func NullParam(name string) Param { return Param{Name: name, Value: `\N`, escaped: true} }

// wire is the value as the engine's escaped text reader takes it.
func (p Param) wire() string {
	if p.escaped {
		return p.Value
	}
	return escapeText(p.Value)
}

// TimeLayout is the text form of time parameters; placeholders for times
// are typed DateTime64(3, 'UTC').
const TimeLayout = "2006-01-02 15:04:05.000"

// Named makes a Param from a Go value: strings, integers, floats, bools,
// time.Time (as UTC milliseconds, for DateTime64(3, 'UTC') placeholders),
// time.Duration (whole seconds), []string (for Array(String)) and []int,
// []uint64 (for arrays of integers).
func Named(name string, v any) Param {
	composite := false
	switch v.(type) {
	case []string, []int, []uint64:
		composite = true
	}
	return Param{Name: name, Value: paramText(v), escaped: composite}
}

func paramText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case int:
		return strconv.FormatInt(int64(x), 10)
	case int8:
		return strconv.FormatInt(int64(x), 10)
	case int16:
		return strconv.FormatInt(int64(x), 10)
	case int32:
		return strconv.FormatInt(int64(x), 10)
	case int64:
		return strconv.FormatInt(x, 10)
	case uint:
		return strconv.FormatUint(uint64(x), 10)
	case uint8:
		return strconv.FormatUint(uint64(x), 10)
	case uint16:
		return strconv.FormatUint(uint64(x), 10)
	case uint32:
		return strconv.FormatUint(uint64(x), 10)
	case uint64:
		return strconv.FormatUint(x, 10)
	case float32:
		return strconv.FormatFloat(float64(x), 'g', -1, 32)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	case time.Time:
		return x.UTC().Format(TimeLayout)
	case time.Duration:
		return strconv.FormatInt(int64(x/time.Second), 10)
	case []string:
		var b strings.Builder
		b.WriteByte('[')
		for i, s := range x {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(quoteLiteral(s))
		}
		b.WriteByte(']')
		return b.String()
	case []int:
		parts := make([]string, len(x))
		for i, n := range x {
			parts[i] = strconv.Itoa(n)
		}
		return "[" + strings.Join(parts, ",") + "]"
	case []uint64:
		parts := make([]string, len(x))
		for i, n := range x {
			parts[i] = strconv.FormatUint(n, 10)
		}
		return "[" + strings.Join(parts, ",") + "]"
	case fmt.Stringer:
		return x.String()
	default:
		panic(fmt.Sprintf("store: unsupported parameter type %T", v))
	}
}

// quoteLiteral renders s as a ClickHouse single-quoted string literal, the
// form elements take inside an Array parameter's text.
func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(escapeText(s), "'", `\'`) + "'"
}

// escapeText escapes a parameter value the way the engine's escaped text
// reader expects: both drivers hand values to that reader, where a raw tab
// or newline would end the value and a backslash starts an escape.
func escapeText(s string) string {
	if !strings.ContainsAny(s, "\\\t\n\r\x00\b\f") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			b.WriteString(`\\`)
		case '\t':
			b.WriteString(`\t`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case 0:
			b.WriteString(`\0`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
