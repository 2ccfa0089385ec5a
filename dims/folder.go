package dims

import (
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Folder folds records' declared dimensions, remembering per tenant the
// values each dimension has taken so far (at most its cap). It is safe
// for concurrent use; one Folder serves every partition of an ingester.
type Folder struct {
	specs   []Spec
	mu      sync.RWMutex
	tenants map[string][]map[string]struct{} // tenant → per spec, the values kept
	folded  *prometheus.CounterVec
}

// NewFolder folds the dimensions of specs; reg (may be nil) gets
// apimeter_dimension_folded_total.
func NewFolder(specs []Spec, reg prometheus.Registerer) *Folder {
	f := &Folder{specs: specs, tenants: map[string][]map[string]struct{}{},
		folded: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "apimeter_dimension_folded_total",
			Help: "Dimension values replaced at ingest: reason cardinality (past the cap, stored as __other__) or invalid (not of the declared type, stored as __invalid__)."},
			[]string{"dimension", "reason"})}
	if reg != nil {
		reg.MustRegister(f.folded)
	}
	return f
}

// Specs are the declared dimensions.
func (f *Folder) Specs() []Spec {
	if f == nil {
		return nil
	}
	return f.specs
}

// Seed tells the folder values a tenant's dimension already has (read
// from the store at start), so a restart does not admit new ones past the
// cap. Values past the cap and unknown dimensions are ignored.
func (f *Folder) Seed(tenant, dimension string, values []string) {
	for i, s := range f.specs {
		if s.Name != dimension {
			continue
		}
		f.mu.Lock()
		sets := f.setsLocked(tenant)
		for _, v := range values {
			if len(sets[i]) >= s.Cap {
				break
			}
			if v != Other && v != Invalid {
				sets[i][strings.Clone(v)] = struct{}{}
			}
		}
		f.mu.Unlock()
	}
}

func (f *Folder) setsLocked(tenant string) []map[string]struct{} {
	sets := f.tenants[tenant]
	if sets == nil {
		sets = make([]map[string]struct{}, len(f.specs))
		for i := range sets {
			sets[i] = map[string]struct{}{}
		}
		f.tenants[strings.Clone(tenant)] = sets
	}
	return sets
}

// Fold is the declared dimensions of meta as stored: each value
// normalized to its type, Invalid when it is not of it, Other when it
// would be the tenant's cap+1st distinct value. Nil when meta has no
// declared key (or no dimension is declared).
func (f *Folder) Fold(tenant string, meta map[string]string) map[string]string {
	if f == nil || len(meta) == 0 {
		return nil
	}
	var out map[string]string
	for i, s := range f.specs {
		raw, ok := meta[s.Name]
		if !ok {
			continue
		}
		if out == nil {
			out = make(map[string]string, len(f.specs))
		}
		v := s.Normalize(raw)
		switch {
		case v == Invalid:
			f.folded.WithLabelValues(s.Name, "invalid").Inc()
		case !f.admit(tenant, i, v):
			v = Other
			f.folded.WithLabelValues(s.Name, "cardinality").Inc()
		}
		out[s.Name] = v
	}
	return out
}

// admit says whether v is, or may become, one of the tenant's values of
// dimension i.
func (f *Folder) admit(tenant string, i int, v string) bool {
	f.mu.RLock()
	sets := f.tenants[tenant]
	if sets != nil {
		if _, ok := sets[i][v]; ok {
			f.mu.RUnlock()
			return true
		}
	}
	f.mu.RUnlock()
	f.mu.Lock()
	defer f.mu.Unlock()
	set := f.setsLocked(tenant)[i]
	if _, ok := set[v]; ok {
		return true
	}
	if len(set) >= f.specs[i].Cap {
		return false
	}
	set[strings.Clone(v)] = struct{}{} // v may alias a record's buffer
	return true
}
