package store

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strings"
)

// Block is a batch of rows held by column, the shape both drivers load
// fastest: the embedded engine reads it as the Native format, the server
// driver appends each column whole.
//
// Column data is a typed slice matching the column's ClickHouse type:
//
//	String, LowCardinality(String)       []string
//	UInt8, UInt16, UInt32, UInt64         []uint8, []uint16, []uint32, []uint64
//	Int32, Int64                          []int32, []int64
//	Float64                               []float64
//	DateTime('UTC')                       []uint32 (Unix seconds)
//	DateTime64(3, 'UTC')                  []int64 (Unix milliseconds)
//	Map(String, String) and LowCardinality keys   []map[string]string
type Block struct {
	cols []BlockColumn
}

// BlockColumn is one named, typed column of a Block.
type BlockColumn struct {
	Name string
	Type string
	Data any
}

// NewBlock starts an empty block.
func NewBlock() *Block { return &Block{} }

// Add appends a column and returns the block for chaining.
func (b *Block) Add(name, chType string, data any) *Block {
	b.cols = append(b.cols, BlockColumn{Name: name, Type: chType, Data: data})
	return b
}

// Columns lists the block's columns.
func (b *Block) Columns() []BlockColumn { return b.cols }

// Rows is the number of rows (the length of the first column).
func (b *Block) Rows() int {
	if len(b.cols) == 0 {
		return 0
	}
	return columnLen(b.cols[0].Data)
}

// Validate checks every column has a supported type and the same length.
func (b *Block) Validate() error {
	if len(b.cols) == 0 {
		return fmt.Errorf("store: empty block")
	}
	n := b.Rows()
	for _, c := range b.cols {
		if l := columnLen(c.Data); l != n {
			return fmt.Errorf("store: block column %s has %d rows, want %d", c.Name, l, n)
		}
		if _, err := nativeType(c); err != nil {
			return err
		}
	}
	return nil
}

// ColumnNames is the column list for an INSERT statement.
func (b *Block) ColumnNames() string {
	names := make([]string, len(b.cols))
	for i, c := range b.cols {
		names[i] = quoteIdent(c.Name)
	}
	return strings.Join(names, ", ")
}

func quoteIdent(s string) string {
	return "`" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), "`", "\\`") + "`"
}

func columnLen(data any) int {
	switch d := data.(type) {
	case []string:
		return len(d)
	case []uint8:
		return len(d)
	case []uint16:
		return len(d)
	case []uint32:
		return len(d)
	case []uint64:
		return len(d)
	case []int32:
		return len(d)
	case []int64:
		return len(d)
	case []float64:
		return len(d)
	case []map[string]string:
		return len(d)
	}
	return -1
}

// nativeType is the type written into the Native block header. The engine
// converts to the table's type on insert, so LowCardinality wrappers are
// sent as their plain type.
func nativeType(c BlockColumn) (string, error) {
	t := strings.ReplaceAll(c.Type, "LowCardinality(String)", "String")
	ok := false
	switch c.Data.(type) {
	case []string:
		ok = t == "String"
	case []uint8:
		ok = t == "UInt8"
	case []uint16:
		ok = t == "UInt16"
	case []uint32:
		ok = t == "UInt32" || strings.HasPrefix(t, "DateTime(") || t == "DateTime"
	case []uint64:
		ok = t == "UInt64"
	case []int32:
		ok = t == "Int32"
	case []int64:
		ok = t == "Int64" || strings.HasPrefix(t, "DateTime64(3")
	case []float64:
		ok = t == "Float64"
	case []map[string]string:
		ok = t == "Map(String, String)"
	}
	if !ok {
		return "", fmt.Errorf("store: column %s: %T cannot carry %s", c.Name, c.Data, c.Type)
	}
	return t, nil
}

// AppendNative encodes the block in the engine's Native format.
func (b *Block) AppendNative(dst []byte) ([]byte, error) {
	if err := b.Validate(); err != nil {
		return dst, err
	}
	dst = slices.Grow(dst, b.nativeSize())
	dst = binary.AppendUvarint(dst, uint64(len(b.cols)))
	dst = binary.AppendUvarint(dst, uint64(b.Rows()))
	le := binary.LittleEndian
	for _, c := range b.cols {
		t, _ := nativeType(c)
		dst = appendString(dst, c.Name)
		dst = appendString(dst, t)
		switch d := c.Data.(type) {
		case []string:
			for _, s := range d {
				dst = appendString(dst, s)
			}
		case []uint8:
			dst = append(dst, d...)
		case []uint16:
			for _, v := range d {
				dst = le.AppendUint16(dst, v)
			}
		case []uint32:
			for _, v := range d {
				dst = le.AppendUint32(dst, v)
			}
		case []uint64:
			for _, v := range d {
				dst = le.AppendUint64(dst, v)
			}
		case []int32:
			for _, v := range d {
				dst = le.AppendUint32(dst, uint32(v))
			}
		case []int64:
			for _, v := range d {
				dst = le.AppendUint64(dst, uint64(v))
			}
		case []float64:
			for _, v := range d {
				dst = le.AppendUint64(dst, math.Float64bits(v))
			}
		case []map[string]string:
			// Offsets, then every key, then every value; keys and values
			// are collected in one pass so they line up.
			var off uint64
			for _, m := range d {
				off += uint64(len(m))
				dst = le.AppendUint64(dst, off)
			}
			vals := make([]string, 0, off)
			for _, m := range d {
				for k, v := range m {
					dst = appendString(dst, k)
					vals = append(vals, v)
				}
			}
			for _, v := range vals {
				dst = appendString(dst, v)
			}
		}
	}
	return dst, nil
}

// nativeSize is an upper bound of the block's Native encoding, so the
// buffer is sized once.
func (b *Block) nativeSize() int {
	n := 20
	for _, c := range b.cols {
		n += 2*binary.MaxVarintLen64 + len(c.Name) + len(c.Type)
		switch d := c.Data.(type) {
		case []string:
			for _, s := range d {
				n += binary.MaxVarintLen32 + len(s)
			}
		case []uint8:
			n += len(d)
		case []uint16:
			n += 2 * len(d)
		case []uint32, []int32:
			n += 4 * columnLen(d)
		case []uint64, []int64, []float64:
			n += 8 * columnLen(d)
		case []map[string]string:
			n += 8 * len(d)
			for _, m := range d {
				for k, v := range m {
					n += 2*binary.MaxVarintLen32 + len(k) + len(v)
				}
			}
		}
	}
	return n
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}
