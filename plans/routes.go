package plans

import (
	"cmp"
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// Route is the route template of a request path, the name endpoint
// limits, prices, objectives and analytics know an endpoint by:
// /api/users/123 becomes /api/users/:id.
//
// The query string and fragment are dropped first (an absolute URL is
// cut to its path, a path without a leading / gets one, "" is "/"). A
// path that already holds a template segment (one starting with ':') is
// returned as it is. Otherwise trailing slashes are dropped and the
// path is matched against the plans file's routes, segment by segment,
// empty segments skipped, literals compared case-sensitively with the
// percent-decoded segment; the template of the most specific match is
// returned as declared: the most literal segments, then one without a
// catch-all, then the most segments, then the first declared. A path no
// route matches gets the default rule: each segment that is an id —
// all digits, a UUID (8-4-4-4-12 hex digits), 16 or more hex digits (a
// Mongo ObjectId, a SHA-1) or a ULID (26 Crockford base-32 characters,
// the first 0 to 7), judged decoded — becomes :id, and every other
// segment is kept as written.
func (ps *Plans) Route(path string) string {
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	path = cutAuthority(path)
	if path == "" {
		return "/"
	}
	if path[0] != '/' {
		path = "/" + path
	}
	if strings.Contains(path, "/:") {
		return path
	}
	for len(path) > 1 && path[len(path)-1] == '/' {
		path = path[:len(path)-1]
	}
	if path == "/" {
		return path
	}
	if ps.routes != nil {
		if r := ps.routes.root.match(path, nil); r != nil {
			return r.template
		}
	}
	return defaultRoute(path)
}

// cutAuthority cuts an absolute http(s) URL to its path.
func cutAuthority(s string) string {
	var rest string
	switch {
	case strings.HasPrefix(s, "https://"):
		rest = s[len("https://"):]
	case strings.HasPrefix(s, "http://"):
		rest = s[len("http://"):]
	default:
		return s
	}
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		return rest[i:]
	}
	return ""
}

// defaultRoute replaces the id segments of path (starting with /, no
// trailing slash) with :id. It allocates only when it replaces one.
func defaultRoute(path string) string {
	var b strings.Builder
	done := 0 // path[:done] is in b
	for i := 0; i < len(path); {
		j := i + 1
		for j < len(path) && path[j] != '/' {
			j++
		}
		if isID(path[i+1 : j]) {
			if b.Cap() == 0 {
				b.Grow(len(path) + 8)
			}
			b.WriteString(path[done : i+1])
			b.WriteString(":id")
			done = j
		}
		i = j
	}
	if done == 0 {
		return path
	}
	b.WriteString(path[done:])
	return b.String()
}

// isID says a path segment is an id by the default rule.
func isID(seg string) bool {
	if strings.IndexByte(seg, '%') >= 0 {
		if d, err := url.PathUnescape(seg); err == nil {
			seg = d
		}
	}
	if seg == "" {
		return false
	}
	digits, hex := true, true
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		if c < '0' || c > '9' {
			digits = false
			if !isHex(c) {
				hex = false
				break
			}
		}
	}
	switch {
	case digits:
		return true
	case hex && len(seg) >= 16:
		return true
	case len(seg) == 36:
		return isUUID(seg)
	case len(seg) == 26:
		return isULID(seg)
	}
	return false
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// isUUID says s (36 bytes) is 8-4-4-4-12 hex digits.
func isUUID(s string) bool {
	for i := 0; i < len(s); i++ {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if s[i] != '-' {
				return false
			}
		} else if !isHex(s[i]) {
			return false
		}
	}
	return true
}

// isULID says s (26 bytes) is a ULID: Crockford's base 32 (no I, L, O,
// U), any case, and a first character of 0 to 7 (48 bits of time).
func isULID(s string) bool {
	if s[0] < '0' || s[0] > '7' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i] | 0x20 // lower case; digits keep their value
		switch {
		case '0' <= s[i] && s[i] <= '9':
		case 'a' <= c && c <= 'z' && c != 'i' && c != 'l' && c != 'o' && c != 'u':
		default:
			return false
		}
	}
	return true
}

// router holds the route templates as a tree of segments.
type router struct {
	root node
}

type node struct {
	lit   map[string]*node // by literal segment
	param *node            // a :name segment
	end   *route           // the route that ends here
	rest  *route           // the route whose *name takes what is left
}

type route struct {
	template string
	// rank orders routes by precedence, 0 first (Route's doc).
	rank int
}

// match finds the best route for what is left of the path (rest starts
// with / or is empty), better than best.
func (n *node) match(rest string, best *route) *route {
	seg, next := nextSegment(rest)
	if seg == "" {
		if n.end != nil && (best == nil || n.end.rank < best.rank) {
			best = n.end
		}
		return best
	}
	if n.rest != nil && (best == nil || n.rest.rank < best.rank) {
		best = n.rest
	}
	if n.lit != nil {
		key := seg
		if strings.IndexByte(seg, '%') >= 0 {
			if d, err := url.PathUnescape(seg); err == nil {
				key = d
			}
		}
		if c := n.lit[key]; c != nil {
			best = c.match(next, best)
		}
	}
	if n.param != nil {
		best = n.param.match(next, best)
	}
	return best
}

// nextSegment splits the next non-empty segment off rest; "" when there
// is none.
func nextSegment(rest string) (seg, next string) {
	i := 0
	for i < len(rest) && rest[i] == '/' {
		i++
	}
	rest = rest[i:]
	j := strings.IndexByte(rest, '/')
	if j < 0 {
		return rest, ""
	}
	return rest[:j], rest[j:]
}

// A parsed template, before it joins the tree.
type template struct {
	text     string
	segs     []segment
	literals int
	// where says where the plans file has it, for errors: the path
	// and its line.
	where string
	line  int
}

// A template's segment: a literal (decoded), a :name or a *name.
type segment struct {
	kind byte // 0 for a literal, ':' or '*'
	lit  string
}

// key is what two templates matching the same paths share. Literals
// are length-prefixed: decoded, one may hold a / or a :.
func (t *template) key() string {
	var b strings.Builder
	for _, s := range t.segs {
		fmt.Fprintf(&b, "%c%d:%s", cmp.Or(s.kind, '='), len(s.lit), s.lit)
	}
	return b.String()
}

// parseTemplate reads a route template, or says what is wrong with it.
// A template is /, or / followed by segments separated by /: literals,
// :name (one segment) or, last, *name (the rest).
func parseTemplate(s string) (*template, string) {
	if !strings.HasPrefix(s, "/") {
		return nil, "want a route template starting with /"
	}
	if strings.ContainsAny(s, "?#") {
		return nil, "want a path without a query string or fragment"
	}
	if len(s) > 1024 {
		return nil, "longer than 1024 bytes"
	}
	t := &template{text: s}
	if s == "/" {
		return t, ""
	}
	if strings.HasSuffix(s, "/") {
		return nil, "drop the trailing slash (paths are matched without one)"
	}
	parts := strings.Split(s[1:], "/")
	for i, p := range parts {
		switch {
		case p == "":
			return nil, "an empty segment"
		case p[0] == ':' || p[0] == '*':
			if len(p) == 1 {
				return nil, fmt.Sprintf("segment %d names no parameter", i+1)
			}
			if p[0] == '*' && i != len(parts)-1 {
				return nil, fmt.Sprintf("a catch-all (%s) must be the last segment", p)
			}
			t.segs = append(t.segs, segment{kind: p[0]})
		default:
			// Requests are matched decoded: so is the literal, and
			// caf%C3%A9 and café are the same route.
			d, err := url.PathUnescape(p)
			if err != nil {
				return nil, fmt.Sprintf("segment %d: a bad percent escape", i+1)
			}
			t.segs = append(t.segs, segment{lit: d})
			t.literals++
		}
	}
	return t, ""
}

// catchAll says the template ends in *name.
func (t *template) catchAll() bool { return len(t.segs) > 0 && t.segs[len(t.segs)-1].kind == '*' }

// maxRoutes bounds the routes key.
const maxRoutes = 10_000

// routes checks the routes key and the endpoint limits' paths (already
// parsed, in ends) and joins them, declared first: a template spelled
// twice is one route, two spellings of the same paths are a mistake.
func (v *validator) routes(declared []string, ends []*template) []*template {
	if len(declared) > maxRoutes {
		v.errf(v.line("routes"), "routes: at most %d", maxRoutes)
	}
	var out []*template
	seen := map[string]*template{}
	add := func(t *template, declared bool) {
		k := t.key()
		prev, dup := seen[k]
		switch {
		case !dup:
			seen[k] = t
			out = append(out, t)
		case declared || prev.text != t.text:
			v.errf(t.line, "%s %q: matches the same paths as %s %q (line %d)", t.where, t.text, prev.where, prev.text, prev.line)
		}
	}
	for i, s := range declared {
		at := fmt.Sprintf("routes[%d]", i)
		t, problem := parseTemplate(s)
		if problem != "" {
			v.errf(v.line("routes", i), "%s %q: %s", at, s, problem)
			continue
		}
		t.where, t.line = at, v.line("routes", i)
		add(t, true)
	}
	for _, t := range ends {
		add(t, false)
	}
	return out
}

// newRouter builds the tree of ts, in declaration order; nil for none.
func newRouter(ts []*template) *router {
	if len(ts) == 0 {
		return nil
	}
	order := slices.Clone(ts)
	slices.SortStableFunc(order, func(a, b *template) int {
		if c := cmp.Compare(b.literals, a.literals); c != 0 {
			return c
		}
		if a.catchAll() != b.catchAll() {
			if a.catchAll() {
				return 1
			}
			return -1
		}
		return cmp.Compare(len(b.segs), len(a.segs))
	})
	r := &router{}
	for rank, t := range order {
		n := &r.root
		rt := &route{template: t.text, rank: rank}
		for i, s := range t.segs {
			switch s.kind {
			case '*':
				n.rest = rt
			case ':':
				if n.param == nil {
					n.param = &node{}
				}
				n = n.param
			default:
				if n.lit == nil {
					n.lit = map[string]*node{}
				}
				c := n.lit[s.lit]
				if c == nil {
					c = &node{}
					n.lit[s.lit] = c
				}
				n = c
			}
			if i == len(t.segs)-1 && s.kind != '*' {
				n.end = rt
			}
		}
		if len(t.segs) == 0 {
			n.end = rt
		}
	}
	return r
}
