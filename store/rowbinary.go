package store

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// The embedded driver reads results in RowBinaryWithNamesAndTypes: a
// header (column count, names, types) followed by rows, each value in its
// type's binary form. It is the engine's cheapest row-oriented output and
// carries the types needed to decode it.

// binReader reads one chunk of output. The embedded engine formats each
// streamed chunk on its own, header included, so rows never span chunks.
type binReader struct {
	p   []byte
	off int
}

func (b *binReader) more() bool { return b.off < len(b.p) }

func (b *binReader) uvarint() (uint64, error) {
	v, n := binary.Uvarint(b.p[b.off:])
	if n <= 0 {
		if n == 0 {
			return 0, io.ErrUnexpectedEOF
		}
		return 0, errors.New("varint overflows")
	}
	b.off += n
	return v, nil
}

func (b *binReader) byte1() (byte, error) {
	if b.off >= len(b.p) {
		return 0, io.ErrUnexpectedEOF
	}
	b.off++
	return b.p[b.off-1], nil
}

// bytes returns the next n bytes without copying them.
func (b *binReader) bytes(n int) ([]byte, error) {
	if n < 0 || len(b.p)-b.off < n {
		return nil, io.ErrUnexpectedEOF
	}
	p := b.p[b.off : b.off+n]
	b.off += n
	return p, nil
}

func (b *binReader) str() (string, error) {
	n, err := b.uvarint()
	if err != nil {
		return "", err
	}
	if n > 1<<30 {
		return "", fmt.Errorf("string of %d bytes", n)
	}
	p, err := b.bytes(int(n))
	return string(p), err
}

type decodeFn func(b *binReader) (any, error)

// readHeader reads the names and types of RowBinaryWithNamesAndTypes.
func readHeader(b *binReader) (names, types []string, dec []decodeFn, err error) {
	n, err := b.uvarint()
	if err != nil {
		return nil, nil, nil, err
	}
	names = make([]string, n)
	types = make([]string, n)
	dec = make([]decodeFn, n)
	for i := range names {
		if names[i], err = b.str(); err != nil {
			return nil, nil, nil, err
		}
	}
	for i := range types {
		if types[i], err = b.str(); err != nil {
			return nil, nil, nil, err
		}
		if dec[i], err = decoderFor(types[i]); err != nil {
			return nil, nil, nil, fmt.Errorf("column %s: %w", names[i], err)
		}
	}
	return names, types, dec, nil
}

func fixed(n int, conv func([]byte) any) decodeFn {
	return func(b *binReader) (any, error) {
		p, err := b.bytes(n)
		if err != nil {
			return nil, err
		}
		return conv(p), nil
	}
}

// decoderFor builds the decoder of one ClickHouse type.
func decoderFor(typ string) (decodeFn, error) {
	name, args := splitType(typ)
	le := binary.LittleEndian
	switch name {
	case "UInt8":
		return fixed(1, func(p []byte) any { return uint64(p[0]) }), nil
	case "UInt16":
		return fixed(2, func(p []byte) any { return uint64(le.Uint16(p)) }), nil
	case "UInt32":
		return fixed(4, func(p []byte) any { return uint64(le.Uint32(p)) }), nil
	case "UInt64":
		return fixed(8, func(p []byte) any { return le.Uint64(p) }), nil
	case "Int8":
		return fixed(1, func(p []byte) any { return int64(int8(p[0])) }), nil
	case "Int16":
		return fixed(2, func(p []byte) any { return int64(int16(le.Uint16(p))) }), nil
	case "Int32":
		return fixed(4, func(p []byte) any { return int64(int32(le.Uint32(p))) }), nil
	case "Int64":
		return fixed(8, func(p []byte) any { return int64(le.Uint64(p)) }), nil
	case "Float32":
		return fixed(4, func(p []byte) any { return float64(math.Float32frombits(le.Uint32(p))) }), nil
	case "Float64":
		return fixed(8, func(p []byte) any { return math.Float64frombits(le.Uint64(p)) }), nil
	case "Bool":
		return fixed(1, func(p []byte) any { return p[0] != 0 }), nil
	case "String":
		return func(b *binReader) (any, error) { return b.str() }, nil
	case "FixedString":
		n, err := intArg(args, 0)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", typ, err)
		}
		return fixed(n, func(p []byte) any { return strings.TrimRight(string(p), "\x00") }), nil
	case "Date":
		return fixed(2, func(p []byte) any { return time.Unix(int64(le.Uint16(p))*86400, 0).UTC() }), nil
	case "Date32":
		return fixed(4, func(p []byte) any { return time.Unix(int64(int32(le.Uint32(p)))*86400, 0).UTC() }), nil
	case "DateTime":
		return fixed(4, func(p []byte) any { return time.Unix(int64(le.Uint32(p)), 0).UTC() }), nil
	case "DateTime64":
		prec, err := intArg(args, 0)
		if err != nil || prec > 9 {
			return nil, fmt.Errorf("%s: bad precision", typ)
		}
		scale := int64(math.Pow10(9 - prec))
		return fixed(8, func(p []byte) any {
			v := int64(le.Uint64(p))
			div := int64(math.Pow10(prec))
			sec, frac := v/div, v%div
			if frac < 0 {
				sec, frac = sec-1, frac+div
			}
			return time.Unix(sec, frac*scale).UTC()
		}), nil
	case "UUID":
		return fixed(16, func(p []byte) any {
			var u [16]byte
			// Two little-endian halves, high half first.
			for i := 0; i < 8; i++ {
				u[i] = p[7-i]
				u[8+i] = p[15-i]
			}
			h := hex.EncodeToString(u[:])
			return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
		}), nil
	case "IPv4":
		return fixed(4, func(p []byte) any {
			v := le.Uint32(p)
			return fmt.Sprintf("%d.%d.%d.%d", v>>24, v>>16&0xff, v>>8&0xff, v&0xff)
		}), nil
	case "Enum8", "Enum16":
		names, err := enumNames(args)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", typ, err)
		}
		size := 1
		if name == "Enum16" {
			size = 2
		}
		return fixed(size, func(p []byte) any {
			var v int64
			if size == 1 {
				v = int64(int8(p[0]))
			} else {
				v = int64(int16(le.Uint16(p)))
			}
			if s, ok := names[v]; ok {
				return s
			}
			return strconv.FormatInt(v, 10)
		}), nil
	case "Decimal", "Decimal32", "Decimal64":
		return decimalDecoder(typ, name, args)
	case "Nothing":
		return func(*binReader) (any, error) { return nil, nil }, nil
	case "LowCardinality":
		return innerDecoder(typ, args)
	case "SimpleAggregateFunction":
		if len(args) != 2 {
			return nil, fmt.Errorf("%s: want 2 arguments", typ)
		}
		return decoderFor(args[1])
	case "Nullable":
		inner, err := innerDecoder(typ, args)
		if err != nil {
			return nil, err
		}
		return func(b *binReader) (any, error) {
			flag, err := b.byte1()
			if err != nil {
				return nil, err
			}
			if flag != 0 {
				return nil, nil
			}
			return inner(b)
		}, nil
	case "Array":
		inner, err := innerDecoder(typ, args)
		if err != nil {
			return nil, err
		}
		return func(b *binReader) (any, error) {
			n, err := b.uvarint()
			if err != nil {
				return nil, err
			}
			if n > 1<<28 {
				return nil, fmt.Errorf("array of %d elements", n)
			}
			out := make([]any, n)
			for i := range out {
				if out[i], err = inner(b); err != nil {
					return nil, err
				}
			}
			return out, nil
		}, nil
	case "Map":
		if len(args) != 2 {
			return nil, fmt.Errorf("%s: want 2 arguments", typ)
		}
		kd, err := decoderFor(args[0])
		if err != nil {
			return nil, err
		}
		vd, err := decoderFor(args[1])
		if err != nil {
			return nil, err
		}
		return func(b *binReader) (any, error) {
			n, err := b.uvarint()
			if err != nil {
				return nil, err
			}
			if n > 1<<28 {
				return nil, fmt.Errorf("map of %d entries", n)
			}
			out := make(map[string]any, n)
			for i := uint64(0); i < n; i++ {
				k, err := kd(b)
				if err != nil {
					return nil, err
				}
				v, err := vd(b)
				if err != nil {
					return nil, err
				}
				out[fmt.Sprint(k)] = v
			}
			return out, nil
		}, nil
	case "Tuple":
		decs := make([]decodeFn, len(args))
		for i, a := range args {
			// Named elements read "name Type".
			if sp := strings.IndexByte(a, ' '); sp > 0 && !strings.ContainsAny(a[:sp], "(") {
				a = strings.TrimSpace(a[sp+1:])
			}
			d, err := decoderFor(a)
			if err != nil {
				return nil, err
			}
			decs[i] = d
		}
		return func(b *binReader) (any, error) {
			out := make([]any, len(decs))
			for i, d := range decs {
				v, err := d(b)
				if err != nil {
					return nil, err
				}
				out[i] = v
			}
			return out, nil
		}, nil
	}
	return nil, fmt.Errorf("unsupported column type %s", typ)
}

func innerDecoder(typ string, args []string) (decodeFn, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("%s: want 1 argument", typ)
	}
	return decoderFor(args[0])
}

func decimalDecoder(typ, name string, args []string) (decodeFn, error) {
	var prec, scale int
	var err error
	switch name {
	case "Decimal":
		if prec, err = intArg(args, 0); err == nil {
			scale, err = intArg(args, 1)
		}
	default:
		prec = map[string]int{"Decimal32": 9, "Decimal64": 18}[name]
		scale, err = intArg(args, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", typ, err)
	}
	div := math.Pow10(scale)
	le := binary.LittleEndian
	switch {
	case prec <= 9:
		return fixed(4, func(p []byte) any { return float64(int32(le.Uint32(p))) / div }), nil
	case prec <= 18:
		return fixed(8, func(p []byte) any { return float64(int64(le.Uint64(p))) / div }), nil
	}
	return nil, fmt.Errorf("unsupported column type %s", typ)
}

func intArg(args []string, i int) (int, error) {
	if i >= len(args) {
		return 0, errors.New("missing argument")
	}
	return strconv.Atoi(strings.TrimSpace(args[i]))
}

func enumNames(args []string) (map[int64]string, error) {
	out := make(map[int64]string, len(args))
	for _, a := range args {
		eq := strings.LastIndexByte(a, '=')
		if eq < 0 {
			return nil, fmt.Errorf("bad enum element %q", a)
		}
		v, err := strconv.ParseInt(strings.TrimSpace(a[eq+1:]), 10, 64)
		if err != nil {
			return nil, err
		}
		name, err := unquote(strings.TrimSpace(a[:eq]))
		if err != nil {
			return nil, err
		}
		out[v] = name
	}
	return out, nil
}

func unquote(s string) (string, error) {
	if len(s) < 2 || s[0] != '\'' || s[len(s)-1] != '\'' {
		return "", fmt.Errorf("not a quoted string: %s", s)
	}
	var b strings.Builder
	for i := 1; i < len(s)-1; i++ {
		if s[i] == '\\' && i+1 < len(s)-1 {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String(), nil
}

// splitType splits "Name(a, b(c), 'x,y')" into "Name" and its top-level
// arguments.
func splitType(t string) (string, []string) {
	t = strings.TrimSpace(t)
	open := strings.IndexByte(t, '(')
	if open < 0 || !strings.HasSuffix(t, ")") {
		return t, nil
	}
	name, body := t[:open], t[open+1:len(t)-1]
	var args []string
	depth, start := 0, 0
	inQuote := false
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case inQuote:
			if c == '\\' {
				i++
			} else if c == '\'' {
				inQuote = false
			}
		case c == '\'':
			inQuote = true
		case c == '(':
			depth++
		case c == ')':
			depth--
		case c == ',' && depth == 0:
			args = append(args, strings.TrimSpace(body[start:i]))
			start = i + 1
		}
	}
	if rest := strings.TrimSpace(body[start:]); rest != "" {
		args = append(args, rest)
	}
	return name, args
}
