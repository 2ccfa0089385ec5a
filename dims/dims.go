// Package dims declares custom dimensions: metadata keys that producers
// send with usage records and that apimeter stores so that series and
// exports can be grouped and filtered by them.
//
// A dimension is declared with a type and a cardinality cap
// (APIMETER_DIMENSIONS, e.g. "region:string:50,sdk:string:20,beta:bool").
// The ingester folds each record's declared keys: a value of the wrong
// type becomes Invalid, and once a tenant has used Cap distinct values of
// a dimension, every new value becomes Other. Both are counted.
// Undeclared metadata keys are left alone in the record's metadata.
package dims

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Values standing in for the ones not kept.
const (
	// Other replaces values past a dimension's cardinality cap.
	Other = "__other__"
	// Invalid replaces values that are not of the dimension's type.
	Invalid = "__invalid__"
)

// Types of a dimension's values.
const (
	TypeString = "string"
	TypeInt    = "int"
	TypeBool   = "bool"
)

// Limits of a declaration.
const (
	// MaxDimensions is how many dimensions may be declared.
	MaxDimensions = 10
	// MaxCap is the largest cardinality cap.
	MaxCap = 10_000
	// DefaultCap is the cap of a declaration that names none.
	DefaultCap = 100
	// MaxValueBytes is the longest string value kept; longer ones are
	// Invalid.
	MaxValueBytes = 256
)

// Spec declares one dimension.
type Spec struct {
	Name string `json:"name"`
	Type string `json:"type"`
	// Cap is how many distinct values one tenant may use.
	Cap int `json:"cap"`
}

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)

// Parse reads a declaration list: comma-separated name[:type[:cap]],
// type string (default), int or bool, cap 1 to MaxCap (default
// DefaultCap; a bool has at most two values).
func Parse(s string) ([]Spec, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	var out []Spec
	var errs []error
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		f := strings.Split(strings.TrimSpace(part), ":")
		sp := Spec{Name: f[0], Type: TypeString, Cap: DefaultCap}
		if len(f) > 3 {
			errs = append(errs, fmt.Errorf("%q: want name[:type[:cap]]", part))
			continue
		}
		if !nameRE.MatchString(sp.Name) {
			errs = append(errs, fmt.Errorf("%q: a name is a lower-case letter then up to 31 letters, digits or underscores", sp.Name))
			continue
		}
		if seen[sp.Name] {
			errs = append(errs, fmt.Errorf("%q: declared twice", sp.Name))
			continue
		}
		seen[sp.Name] = true
		if len(f) > 1 {
			sp.Type = f[1]
		}
		switch sp.Type {
		case TypeString, TypeInt:
		case TypeBool:
			sp.Cap = 2
		default:
			errs = append(errs, fmt.Errorf("%s: type %q: want string, int or bool", sp.Name, sp.Type))
			continue
		}
		if len(f) > 2 {
			n, err := strconv.Atoi(f[2])
			if err != nil || n < 1 || n > MaxCap {
				errs = append(errs, fmt.Errorf("%s: cap %q: want 1 to %d", sp.Name, f[2], MaxCap))
				continue
			}
			if sp.Type != TypeBool {
				sp.Cap = n
			}
		}
		out = append(out, sp)
	}
	if len(out)+len(errs) > MaxDimensions {
		errs = append(errs, fmt.Errorf("%d dimensions: at most %d may be declared", len(out)+len(errs), MaxDimensions))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// Normalize is v as the dimension keeps it, or Invalid: ints in decimal
// without leading zeros or plus sign, bools as true or false.
func (s Spec) Normalize(v string) string {
	switch s.Type {
	case TypeInt:
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return Invalid
		}
		return strconv.FormatInt(n, 10)
	case TypeBool:
		b, err := strconv.ParseBool(v)
		if err != nil {
			return Invalid
		}
		return strconv.FormatBool(b)
	}
	if v == "" || len(v) > MaxValueBytes || v == Other || v == Invalid {
		return Invalid
	}
	return v
}

// Find is the declared dimension named name.
func Find(specs []Spec, name string) (Spec, bool) {
	for _, s := range specs {
		if s.Name == name {
			return s, true
		}
	}
	return Spec{}, false
}

// Names are the declared dimensions' names.
func Names(specs []Spec) []string {
	out := make([]string, len(specs))
	for i, s := range specs {
		out[i] = s.Name
	}
	return out
}
