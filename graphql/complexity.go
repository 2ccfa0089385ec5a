// Package graphql measures the complexity of GraphQL queries, so that a
// GraphQL API is metered by what a call asks for rather than by the
// number of calls: Cost plugs into the Cost fields of
// limits.MiddlewareConfig and producer.MiddlewareConfig.
//
//	cost := graphql.Cost(graphql.Options{Schema: schema})
//	mw := limiter.Middleware(limits.MiddlewareConfig{Cost: cost})
//	e.POST("/graphql", h, producer.TrackUsage(p, producer.MiddlewareConfig{Cost: cost}), mw.Enforce())
//
// # Cost model
//
// The model is the connection multiplier of public GraphQL APIs: a
// field costs its own cost plus its children's cost times the number of
// items it may return.
//
//	cost(selection set) = Σ cost(field)
//	cost(field)         = own + multiplier × cost(field's selection set)
//
// own is 1, or Options.FieldCost["Type.field"]. The multiplier is the
// value of the field's first argument named in Options.ListArgs (first,
// last, limit, pageSize, top), a literal or a variable; without one it
// is Options.DefaultListSize for a field of list type (known only with a
// schema) and 1 otherwise. A list field directly under a field sized by
// such an argument (the edges and nodes of a connection) has multiplier
// 1: the connection's size already counts them.
//
//	{ users(first: 10) { edges { node { name friends { name } } } } }
//
//	users   = 1 + 10 × edges
//	edges   = 1 + 1 × node    (a list, but sized by users)
//	node    = 1 + name + friends
//	friends = 1 + 10 × name   (a list without argument)
//
// which comes to node 13, edges 14 and users 141 with a schema where
// edges and friends are lists. Without a schema friends costs 2 and
// users 51.
//
// Fragment spreads and inline fragments count as their fields written in
// place; inline fragments on different types of an interface or union
// are all counted, as if every one matched (an upper bound). Fields
// dropped by @skip or @include cost nothing, and so do __typename and
// the introspection fields (names starting with "__"), subtrees
// included, which do not count for depth either. Depth is the number of
// nested fields: { a { b } } is 2 deep. Arithmetic saturates at
// math.MaxUint64.
//
// Without a schema, the type of a field's parent is known at the root
// (Query, Mutation, Subscription) and under a fragment's type condition;
// FieldCost applies only there.
package graphql

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"
)

// Options set how complexity is counted. Zero fields take the defaults
// in their comments.
type Options struct {
	// Schema, when set, validates queries and tells list fields by their
	// type. Default: none; queries are only parsed and a field is a list
	// when it has one of ListArgs.
	Schema *ast.Schema
	// FieldCost is the own cost of fields, keyed "Type.field" (say
	// "Query.search"). Default: 1 per field.
	FieldCost map[string]uint64
	// ListArgs are the arguments that bound a list's size, tried in order.
	// Default: first, last, limit, pageSize, top.
	ListArgs []string
	// DefaultListSize is the size of a list field without such an
	// argument. Default 10.
	DefaultListSize uint64
	// MaxDepth refuses queries nested deeper with a *LimitError. Default:
	// no limit.
	MaxDepth int
	// MaxComplexity refuses costlier queries with a *LimitError. Default:
	// no limit.
	MaxComplexity uint64
	// Fallback is what Cost counts for a request that is not a GraphQL
	// query or not a valid one. Default 1.
	Fallback uint64
}

var defaultListArgs = []string{"first", "last", "limit", "pageSize", "top"}

// LimitError refuses a query past Options.MaxDepth or MaxComplexity.
type LimitError struct {
	What  string // "depth" or "complexity"
	Value uint64 // the query's
	Max   uint64
}

// Error names the limit, the query's value and the maximum.
func (e *LimitError) Error() string {
	return fmt.Sprintf("graphql: query %s %d exceeds the maximum of %d", e.What, e.Value, e.Max)
}

// Complexity is the cost of the operation operationName ("" when the
// query holds one operation) of a query, by the package's cost model.
// An error at a place in the query wraps a *gqlerror.Error (or a
// gqlerror.List) with its position; queries past the limits get a
// *LimitError.
func Complexity(query, operationName string, variables map[string]any, opts Options) (uint64, error) {
	r, err := measure(query, operationName, variables, &opts)
	if err != nil {
		return 0, err
	}
	if opts.MaxDepth > 0 && r.depth > opts.MaxDepth {
		return 0, &LimitError{What: "depth", Value: uint64(r.depth), Max: uint64(opts.MaxDepth)}
	}
	if opts.MaxComplexity > 0 && r.cost > opts.MaxComplexity {
		return 0, &LimitError{What: "complexity", Value: r.cost, Max: opts.MaxComplexity}
	}
	return r.cost, nil
}

// result is what a selection set costs and how deep it goes.
type result struct {
	cost  uint64
	depth int
}

// measure parses (and with a schema validates) a query and walks its
// operation, limits aside.
func measure(query, operationName string, vars map[string]any, opts *Options) (result, error) {
	var doc *ast.QueryDocument
	if opts.Schema != nil {
		d, errs := gqlparser.LoadQueryWithRules(opts.Schema, query, nil)
		switch {
		case len(errs) == 1:
			return result{}, fmt.Errorf("graphql: %w", errs[0])
		case len(errs) > 1:
			return result{}, fmt.Errorf("graphql: %w", errs)
		}
		doc = d
	} else {
		d, err := parser.ParseQuery(&ast.Source{Input: query})
		if err != nil {
			return result{}, fmt.Errorf("graphql: %w", err)
		}
		doc = d
	}
	op, err := operation(doc, operationName)
	if err != nil {
		return result{}, err
	}
	w := walker{opts: opts, doc: doc, op: op, vars: vars, listArgs: opts.ListArgs, listSize: opts.DefaultListSize}
	if w.listArgs == nil {
		w.listArgs = defaultListArgs
	}
	if w.listSize == 0 {
		w.listSize = 10
	}
	root := ""
	if opts.Schema == nil {
		root = rootType(op.Operation)
	}
	return w.selectionSet(op.SelectionSet, root, false)
}

// operation picks the operation to run, as GraphQL's GetOperation does.
func operation(doc *ast.QueryDocument, name string) (*ast.OperationDefinition, error) {
	if name == "" {
		switch len(doc.Operations) {
		case 1:
			return doc.Operations[0], nil
		case 0:
			return nil, errors.New("graphql: the query has no operation")
		}
		return nil, errors.New("graphql: the query has several operations: operationName must name one")
	}
	if op := doc.Operations.ForName(name); op != nil {
		return op, nil
	}
	return nil, fmt.Errorf("graphql: no operation named %q", name)
}

func rootType(op ast.Operation) string {
	switch op {
	case ast.Mutation:
		return "Mutation"
	case ast.Subscription:
		return "Subscription"
	}
	return "Query"
}

// walker walks one operation.
type walker struct {
	opts     *Options
	doc      *ast.QueryDocument
	op       *ast.OperationDefinition
	vars     map[string]any
	listArgs []string
	listSize uint64
	frags    map[fragKey]result // fragments walked
	active   []string           // fragments being walked
}

// fragKey is a fragment in a place: its cost differs directly under a
// connection.
type fragKey struct {
	name string
	conn bool
}

// selectionSet measures a selection set whose fields belong to parent
// ("" when unknown); conn says it is a connection's, sized by it.
func (w *walker) selectionSet(set ast.SelectionSet, parent string, conn bool) (result, error) {
	var r result
	for _, sel := range set {
		var s result
		var ok bool
		var err error
		switch sel := sel.(type) {
		case *ast.Field:
			if strings.HasPrefix(sel.Name, "__") {
				continue
			}
			if ok, err = w.included(sel.Directives); ok {
				s, err = w.field(sel, parent, conn)
			}
		case *ast.InlineFragment:
			if ok, err = w.included(sel.Directives); ok {
				p := parent
				if sel.TypeCondition != "" {
					p = sel.TypeCondition
				}
				s, err = w.selectionSet(sel.SelectionSet, p, conn)
			}
		case *ast.FragmentSpread:
			if ok, err = w.included(sel.Directives); ok {
				s, err = w.fragment(sel, conn)
			}
		}
		if err != nil {
			return r, err
		}
		r.cost = add(r.cost, s.cost)
		r.depth = max(r.depth, s.depth)
	}
	return r, nil
}

func (w *walker) fragment(spread *ast.FragmentSpread, conn bool) (result, error) {
	key := fragKey{spread.Name, conn}
	if r, ok := w.frags[key]; ok {
		return r, nil
	}
	for _, name := range w.active {
		if name == spread.Name {
			return result{}, posError(spread.Position, "fragment %s spreads itself", spread.Name)
		}
	}
	def := w.doc.Fragments.ForName(spread.Name)
	if def == nil {
		return result{}, posError(spread.Position, "unknown fragment %s", spread.Name)
	}
	w.active = append(w.active, spread.Name)
	r, err := w.selectionSet(def.SelectionSet, def.TypeCondition, conn)
	w.active = w.active[:len(w.active)-1]
	if err != nil {
		return r, err
	}
	if w.frags == nil {
		w.frags = map[fragKey]result{}
	}
	w.frags[key] = r
	return r, nil
}

func (w *walker) field(f *ast.Field, parent string, conn bool) (result, error) {
	if f.ObjectDefinition != nil {
		parent = f.ObjectDefinition.Name
	}
	own := uint64(1)
	if len(w.opts.FieldCost) > 0 && parent != "" {
		if c, ok := w.opts.FieldCost[parent+"."+f.Name]; ok {
			own = c
		}
	}
	if len(f.SelectionSet) == 0 {
		return result{cost: own, depth: 1}, nil
	}
	size, sized, err := w.size(f)
	if err != nil {
		return result{}, err
	}
	list := f.Definition != nil && f.Definition.Type.Elem != nil
	mult := uint64(1)
	switch {
	case sized:
		mult = size
	case list && !conn:
		mult = w.listSize
	}
	r, err := w.selectionSet(f.SelectionSet, "", sized && !list)
	if err != nil {
		return r, err
	}
	return result{cost: add(own, mul(mult, r.cost)), depth: r.depth + 1}, nil
}

// size is the value of a field's first list argument set.
func (w *walker) size(f *ast.Field) (uint64, bool, error) {
	for _, name := range w.listArgs {
		a := f.Arguments.ForName(name)
		if a == nil {
			continue
		}
		v, ok := w.value(a.Value)
		if !ok || v == nil {
			continue
		}
		n, ok := count(v)
		if !ok {
			return 0, false, posError(a.Value.Position, "argument %s of %s is %v, not a non-negative integer", name, f.Name, v)
		}
		return n, true, nil
	}
	return 0, false, nil
}

// included applies @skip and @include.
func (w *walker) included(dirs ast.DirectiveList) (bool, error) {
	for _, d := range dirs {
		if d.Name != "skip" && d.Name != "include" {
			continue
		}
		var v any
		if a := d.Arguments.ForName("if"); a != nil {
			v, _ = w.value(a.Value)
		}
		b, ok := v.(bool)
		if !ok {
			return false, posError(d.Position, "@%s needs a boolean if, not %v", d.Name, v)
		}
		if b == (d.Name == "skip") {
			return false, nil
		}
	}
	return true, nil
}

// value is the scalar an argument holds: an int64 or uint64 for an
// integer, a bool, or the variable's value or default. ok is false for a
// variable without either.
func (w *walker) value(v *ast.Value) (any, bool) {
	switch v.Kind {
	case ast.Variable:
		if x, ok := w.vars[v.Raw]; ok {
			return x, true
		}
		if d := w.op.VariableDefinitions.ForName(v.Raw); d != nil && d.DefaultValue != nil && d.DefaultValue.Kind != ast.Variable {
			return w.value(d.DefaultValue)
		}
		return nil, false
	case ast.IntValue:
		if n, err := strconv.ParseInt(v.Raw, 10, 64); err == nil {
			return n, true
		}
		if n, err := strconv.ParseUint(v.Raw, 10, 64); err == nil {
			return n, true
		}
	case ast.BooleanValue:
		return v.Raw == "true", true
	case ast.NullValue:
		return nil, true
	}
	return v.Raw, true
}

// count reads a list size from a literal or a variable's JSON value.
func count(v any) (uint64, bool) {
	switch n := v.(type) {
	case int:
		return uint64(n), n >= 0
	case int32:
		return uint64(n), n >= 0
	case int64:
		return uint64(n), n >= 0
	case uint:
		return uint64(n), true
	case uint32:
		return uint64(n), true
	case uint64:
		return n, true
	case float64:
		if n >= 0 && n < math.MaxUint64 && n == math.Trunc(n) {
			return uint64(n), true
		}
	case json.Number:
		if u, err := strconv.ParseUint(string(n), 10, 64); err == nil {
			return u, true
		}
		if f, err := n.Float64(); err == nil {
			return count(f)
		}
	}
	return 0, false
}

func posError(pos *ast.Position, format string, args ...any) error {
	return fmt.Errorf("graphql: %w", gqlerror.ErrorPosf(pos, format, args...))
}

// add and mul saturate at math.MaxUint64.
func add(a, b uint64) uint64 {
	if s := a + b; s >= a {
		return s
	}
	return math.MaxUint64
}

func mul(a, b uint64) uint64 {
	if hi, lo := bits.Mul64(a, b); hi == 0 {
		return lo
	}
	return math.MaxUint64
}
