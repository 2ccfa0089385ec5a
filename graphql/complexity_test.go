package graphql

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

const testSDL = `
type Query {
  viewer: User
  user(id: ID!): User
  users(first: Int, after: String): UserConnection
  search(text: String!, limit: Int): [SearchResult!]!
  tags: [String!]!
  node(id: ID!): Node
}
type Mutation { rename(id: ID!, name: String!): User }
interface Node { id: ID! }
type User implements Node {
  id: ID!
  name: String!
  friends(first: Int): [User!]!
  posts: [Post!]!
}
type Post implements Node { id: ID! title: String! author: User! }
union SearchResult = User | Post
type UserConnection { edges: [UserEdge!]! pageInfo: PageInfo! totalCount: Int! }
type UserEdge { cursor: String! node: User! }
type PageInfo { hasNextPage: Boolean! }
`

func testSchema(t testing.TB) *ast.Schema {
	t.Helper()
	s, err := gqlparser.LoadSchema(&ast.Source{Name: "test.graphql", Input: testSDL})
	require.NoError(t, err)
	return s
}

func TestComplexity(t *testing.T) {
	schema := testSchema(t)
	type vars = map[string]any
	cases := []struct {
		name   string
		schema bool
		query  string
		op     string
		vars   vars
		opts   Options
		want   uint64
	}{
		{name: "flat", query: `{ a b c }`, want: 3},
		{name: "nested object", query: `{ viewer { name email } }`, want: 3}, // 1 + (1 + 1)
		{name: "first literal", query: `{ users(first: 10) { name } }`, want: 11},
		// friends = 1 + 5×1 = 6; users = 1 + 10×(name 1 + friends 6)
		{name: "nested lists", query: `{ users(first: 10) { name friends(first: 5) { name } } }`, want: 71},
		{name: "first zero", query: `{ users(first: 0) { name } }`, want: 1},
		{name: "last", query: `{ users(last: 4) { name } }`, want: 5},
		{name: "first tried before limit", query: `{ users(limit: 2, first: 3) { name } }`, want: 4},
		{name: "pageSize and top", query: `{ a(pageSize: 2) { x } b(top: 3) { x } }`, want: 3 + 4},
		{name: "null first", query: `{ users(first: null, limit: 2) { name } }`, want: 3},
		{name: "custom list args", query: `{ users(count: 4, first: 9) { name } }`, opts: Options{ListArgs: []string{"count"}}, want: 5},
		{name: "scalar list field", query: `{ tags(first: 50) }`, want: 1},
		{name: "variable", query: `query Q($n: Int) { users(first: $n) { name } }`, vars: vars{"n": 3}, want: 4},
		{name: "variable json.Number", query: `query Q($n: Int) { users(first: $n) { name } }`, vars: vars{"n": json.Number("3")}, want: 4},
		{name: "variable float64", query: `query Q($n: Int) { users(first: $n) { name } }`, vars: vars{"n": 3.0}, want: 4},
		{name: "variable default", query: `query Q($n: Int = 7) { users(first: $n) { name } }`, want: 8},
		{name: "variable over default", query: `query Q($n: Int = 7) { users(first: $n) { name } }`, vars: vars{"n": 2}, want: 3},
		{name: "variable null", query: `query Q($n: Int = 7) { users(first: $n) { name } }`, vars: vars{"n": nil}, want: 2},
		{name: "variable unset", query: `query Q($n: Int) { users(first: $n) { name } }`, want: 2},
		{name: "list without schema", query: `{ users { name } }`, want: 2},
		{name: "fragment", query: `{ users(first: 10) { ...F } } fragment F on User { name email }`, want: 21},
		// F = name + G = 2; a = 1 + 2×2; b = 1 + 3×2
		{name: "fragments reused", query: `{ a: users(first: 2) { ...F } b: users(first: 3) { ...F } }
			fragment F on User { name ...G } fragment G on User { email }`, want: 12},
		// node = 1 + (id 1 + name 1 + title 1 + author 2)
		{name: "inline fragments summed", query: `{ node(id: 1) { id ... on User { name } ... on Post { title author { name } } } }`, want: 6},
		{name: "inline fragment without type", query: `{ viewer { ... { name id } } }`, want: 3},
		{name: "skip include literal", query: `{ a b @skip(if: true) c @include(if: false) d @include(if: true) e @skip(if: false) }`, want: 3},
		{name: "skip variable true", query: `query ($s: Boolean!) { a b @skip(if: $s) }`, vars: vars{"s": true}, want: 1},
		{name: "skip variable false", query: `query ($s: Boolean!) { a b @skip(if: $s) }`, vars: vars{"s": false}, want: 2},
		{name: "include variable default", query: `query ($s: Boolean = false) { a b @include(if: $s) }`, want: 1},
		{name: "skip and include both", query: `{ a b @include(if: true) @skip(if: true) }`, want: 1},
		{name: "skip fragments", query: `{ a ...F @skip(if: true) ... @include(if: false) { b } } fragment F on Query { c }`, want: 1},
		{name: "skip inside list", query: `{ users(first: 10) { name id @skip(if: true) } }`, want: 11},
		{name: "typename free", query: `{ __typename users(first: 10) { __typename name } }`, want: 11},
		{name: "typename only", query: `{ __typename }`, want: 0},
		{name: "introspection free", query: `{ __schema { types { name fields { name } } } a }`, want: 1},
		// search = 5 + 1; viewer = 1 + (name 1 + name2 100: the parent is known under the type condition)
		{name: "field cost without schema", query: `{ search(text: "x") { id } viewer { name ... on User { name2: name } } }`,
			opts: Options{FieldCost: map[string]uint64{"Query.search": 5, "User.name": 100}}, want: 108},
		{name: "field cost zero", query: `{ free paid }`, opts: Options{FieldCost: map[string]uint64{"Query.free": 0}}, want: 1},
		{name: "field cost mutation", query: `mutation M { rename(id: 1, name: "x") { name } }`,
			opts: Options{FieldCost: map[string]uint64{"Mutation.rename": 10}}, want: 11},
		{name: "named operation B", query: `query A { a } query B { b c }`, op: "B", want: 2},
		{name: "named operation A", query: `query A { a } query B { b c }`, op: "A", want: 1},
		{name: "name of the only operation", query: `query A { a b }`, op: "A", want: 2},
		// edges = 1 + 1×node (sized by users); node = 1 + name 1 + friends 2; users = 1 + 10×edges
		{name: "doc example without schema", query: `{ users(first: 10) { edges { node { name friends { name } } } } }`, want: 51},

		{name: "schema flat", schema: true, query: `{ viewer { id name } }`, want: 3},
		{name: "schema scalar list", schema: true, query: `{ tags }`, want: 1},
		// posts: a list without argument = 1 + 10×1
		{name: "schema default list size", schema: true, query: `{ viewer { posts { title } } }`, want: 12},
		{name: "schema custom list size", schema: true, query: `{ viewer { posts { title } } }`, opts: Options{DefaultListSize: 3}, want: 5},
		// friends 1 + 10×1; node 1 + 1 + 11; edges 1 + 13; users 1 + 10×14
		{name: "doc example with schema", schema: true, query: `{ users(first: 10) { edges { node { name friends { name } } } } }`, want: 141},
		// node 13 as above; edges 1 + (cursor 1 + node 13) = 15; pageInfo 2; users 1 + 10×(1 + 15 + 2)
		{name: "schema connection", schema: true,
			query: `{ users(first: 10) { totalCount edges { cursor node { name friends { name } } } pageInfo { hasNextPage } } }`, want: 181},
		// users is not sized: edges is a list of 10; node 2; edges 1 + 10×2; users 1 + 21
		{name: "schema connection unsized", schema: true, query: `{ users { edges { node { name } } } }`, want: 22},
		{name: "schema connection variable", schema: true, query: `query ($n: Int = 4) { users(first: $n) { edges { node { name } } } }`,
			want: 1 + 4*(1+2)},
		// inner friends is a list under a list: 1 + 10×1; outer 1 + 2×(1 + 11); viewer 1 + 25
		{name: "schema list in sized list", schema: true, query: `{ viewer { friends(first: 2) { name friends { name } } } }`, want: 26},
		// viewer 1 + 3; search is a list without limit: 5 + 10×3
		{name: "schema field cost", schema: true, query: `{ viewer { name } search(text: "x") { ... on User { name } } }`,
			opts: Options{FieldCost: map[string]uint64{"User.name": 3, "Query.search": 5}}, want: 39},
		{name: "schema field cost limit", schema: true, query: `{ search(text: "x", limit: 2) { ... on User { name } } }`,
			opts: Options{FieldCost: map[string]uint64{"User.name": 3, "Query.search": 5}}, want: 11},
		{name: "schema union summed", schema: true, query: `{ search(text: "x", limit: 1) { ... on User { id name } ... on Post { id title } } }`, want: 5},
		// F costs 2; user 1 + 2; node 1 + (id 1 + F 2)
		{name: "schema fragments", schema: true, query: `query Q { user(id: 1) { ...F } node(id: 2) { id ...F } } fragment F on User { id name }`, want: 7},
		{name: "schema named operation", schema: true, query: `query A { viewer { id } } query B { tags viewer { id name } }`, op: "B", want: 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts := tc.opts
			if tc.schema {
				opts.Schema = schema
			}
			got, err := Complexity(tc.query, tc.op, tc.vars, opts)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestComplexityErrors(t *testing.T) {
	schema := testSchema(t)
	cases := []struct {
		name   string
		schema bool
		query  string
		op     string
		vars   map[string]any
		want   string
	}{
		{name: "syntax", query: "{ a\n  b(", want: "input:2:5: Expected Name, found <EOF>"},
		{name: "syntax with schema", schema: true, query: "{ viewer { ", want: "input:1:12: Expected Name, found <EOF>"},
		{name: "no operation", query: `fragment F on Query { a }`, want: "no operation"},
		{name: "several operations", query: `query A { a } query B { b }`, want: "operationName must name one"},
		{name: "unknown operation", query: `query A { a } query B { b }`, op: "C", want: `no operation named "C"`},
		{name: "unknown operation of one", query: `{ a }`, op: "A", want: `no operation named "A"`},
		{name: "fragment cycle", query: `{ ...A } fragment A on Query { a ...B } fragment B on Query { ...A }`, want: "input:1:66: fragment A spreads itself"}, // the spread's name
		{name: "fragment self", query: `{ x { ...A } } fragment A on X { a { ...A } }`, want: "fragment A spreads itself"},
		{name: "fragment cycle with schema", schema: true, query: `{ viewer { ...A } } fragment A on User { friends { ...A } }`, want: "Cannot spread fragment"},
		{name: "unknown fragment", query: `{ ...Nope }`, want: "unknown fragment Nope"},
		{name: "negative first", query: `{ users(first: -1) { name } }`, want: "input:1:16: argument first of users is -1, not a non-negative integer"},
		{name: "negative variable", query: `query ($n: Int) { users(first: $n) { name } }`, vars: map[string]any{"n": -2}, want: "is -2, not a non-negative"},
		{name: "negative default", query: `query ($n: Int = -3) { users(first: $n) { name } }`, want: "is -3, not a non-negative"},
		{name: "float variable", query: `query ($n: Int) { users(first: $n) { name } }`, vars: map[string]any{"n": 2.5}, want: "is 2.5, not a non-negative"},
		{name: "string variable", query: `query ($n: Int) { users(first: $n) { name } }`, vars: map[string]any{"n": "10"}, want: "is 10, not a non-negative"},
		{name: "float literal", query: `{ users(first: 1.5) { name } }`, want: "is 1.5, not a non-negative"},
		{name: "too large literal", query: `{ users(first: 18446744073709551616) { name } }`, want: "not a non-negative"},
		{name: "skip without value", query: `query ($s: Boolean) { a @skip(if: $s) }`, want: "@skip needs a boolean if"},
		{name: "include not boolean", query: `{ a @include(if: 1) }`, want: "@include needs a boolean if"},
		{name: "unknown field", schema: true, query: `{ viewer { nope } }`, want: `input:1:12: Cannot query field "nope" on type "User".`},
		{name: "several validation errors", schema: true, query: `{ nope viewer { nada } }`, want: `Cannot query field "nada"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts := Options{}
			if tc.schema {
				opts.Schema = schema
			}
			_, err := Complexity(tc.query, tc.op, tc.vars, opts)
			require.ErrorContains(t, err, tc.want)
			require.True(t, strings.HasPrefix(err.Error(), "graphql: "), err.Error())
		})
	}
	_, err := Complexity("{ a\n  b(", "", nil, Options{})
	var gerr *gqlerror.Error
	require.ErrorAs(t, err, &gerr)
	require.Equal(t, []gqlerror.Location{{Line: 2, Column: 5}}, gerr.Locations)
}

func TestComplexityLimits(t *testing.T) {
	depth := func(q string, max int) error {
		_, err := Complexity(q, "", nil, Options{MaxDepth: max})
		return err
	}
	require.NoError(t, depth(`{ a { b { c } } }`, 3))
	require.NoError(t, depth(`{ a { b { c } d } e { f } g }`, 3)) // the deepest path, not the sum
	var le *LimitError
	require.ErrorAs(t, depth(`{ a { b { c } } }`, 2), &le)
	require.Equal(t, LimitError{What: "depth", Value: 3, Max: 2}, *le)
	require.EqualError(t, le, "graphql: query depth 3 exceeds the maximum of 2")
	// fragments nest where they are spread; introspection adds no depth
	require.ErrorAs(t, depth(`{ a { ...F } } fragment F on X { b { c } }`, 2), &le)
	require.Equal(t, uint64(3), le.Value)
	require.NoError(t, depth(`{ a { __schema { types { fields { name } } } } }`, 1))
	require.NoError(t, depth(`{ a { b { c } } d @skip(if: true) { e { f { g } } } }`, 3))

	n, err := Complexity(`{ users(first: 10) { name } }`, "", nil, Options{MaxComplexity: 11})
	require.NoError(t, err)
	require.Equal(t, uint64(11), n)
	_, err = Complexity(`{ users(first: 10) { name } }`, "", nil, Options{MaxComplexity: 10})
	require.ErrorAs(t, err, &le)
	require.Equal(t, LimitError{What: "complexity", Value: 11, Max: 10}, *le)
}

func TestComplexitySaturates(t *testing.T) {
	// a = 1 + 2³² × (1 + 2³² × 1) = 2⁶⁴ + 2³² + 1: past MaxUint64
	q := `{ a(first: 4294967296) { b(first: 4294967296) { c } } }`
	n, err := Complexity(q, "", nil, Options{})
	require.NoError(t, err)
	require.Equal(t, uint64(math.MaxUint64), n)
	// one step less fits: 1 + 2³² × (1 + 2³¹)
	n, err = Complexity(`{ a(first: 4294967296) { b(first: 2147483648) { c } } }`, "", nil, Options{})
	require.NoError(t, err)
	require.Equal(t, uint64(1+(1<<32)*(1+(1<<31))), n)

	_, err = Complexity(q, "", nil, Options{MaxComplexity: 1000})
	var le *LimitError
	require.ErrorAs(t, err, &le)
	require.Equal(t, uint64(math.MaxUint64), le.Value)

	n, err = Complexity(`{ a(first: 18446744073709551615) { b } c }`, "", nil, Options{})
	require.NoError(t, err)
	require.Equal(t, uint64(math.MaxUint64), n)

	// F64 doubles 64 times: 2⁶⁴ fields, saturated, walked in linear time
	var b strings.Builder
	b.WriteString("{ ...F64 } fragment F0 on Query { a }\n")
	for i := 1; i <= 64; i++ {
		fmt.Fprintf(&b, "fragment F%d on Query { ...F%d x%d: a ...F%d }\n", i, i-1, i, i-1)
	}
	n, err = Complexity(b.String(), "", nil, Options{})
	require.NoError(t, err)
	require.Equal(t, uint64(math.MaxUint64), n)
}

func TestSaturatingArithmetic(t *testing.T) {
	require.Equal(t, uint64(5), add(2, 3))
	require.Equal(t, uint64(math.MaxUint64), add(math.MaxUint64, 1))
	require.Equal(t, uint64(math.MaxUint64), add(math.MaxUint64-1, 1))
	require.Equal(t, uint64(6), mul(2, 3))
	require.Equal(t, uint64(0), mul(math.MaxUint64, 0))
	require.Equal(t, uint64(math.MaxUint64), mul(1<<32, 1<<32))
	require.Equal(t, uint64(math.MaxUint64-1), mul((math.MaxUint64-1)/2, 2))
}

// benchQuery has 30 fields, two fragments and nested lists.
const benchQuery = `query Dashboard($n: Int = 20) {
  viewer { ...UserFields posts { ...PostFields } }
  users(first: $n) {
    totalCount
    pageInfo { hasNextPage }
    edges { cursor node { ...UserFields friends(first: 5) { ...UserFields posts { ...PostFields } } } }
  }
  search(text: "graphql", limit: 10) {
    __typename
    ... on User { ...UserFields }
    ... on Post { ...PostFields author { id name } }
  }
  node(id: "1") { id ... on Post { title } }
  tags
  user(id: "2") { id name posts { id title } }
}
fragment UserFields on User { id name }
fragment PostFields on Post { id title author { ...UserFields } }
`

func BenchmarkComplexity(b *testing.B) {
	schema := testSchema(b)
	for _, bc := range []struct {
		name string
		opts Options
	}{
		{"parse", Options{}},
		{"schema", Options{Schema: schema}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Complexity(benchQuery, "", nil, bc.opts); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
