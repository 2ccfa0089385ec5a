package dims

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	specs, err := Parse(" region:string:3, build:int , beta:bool:50,sdk")
	require.NoError(t, err)
	require.Equal(t, []Spec{{"region", TypeString, 3}, {"build", TypeInt, DefaultCap}, {"beta", TypeBool, 2}, {"sdk", TypeString, DefaultCap}}, specs)
	none, err := Parse("")
	require.NoError(t, err)
	require.Empty(t, none)

	for in, want := range map[string]string{
		"Region":                             "lower-case",
		"region:float":                       `type "float"`,
		"region:string:0":                    "cap",
		"region:string:10001":                "cap",
		"region:string:x":                    "cap",
		"a,a":                                "declared twice",
		"a:string:1:2":                       "name[:type[:cap]]",
		"a,b,c,d,e,f,g,h,i,j,k":              "at most 10",
		"x_________________________________": "lower-case",
	} {
		_, err := Parse(in)
		require.ErrorContains(t, err, want, in)
	}
}

func TestNormalize(t *testing.T) {
	str, num, flag := Spec{Type: TypeString}, Spec{Type: TypeInt}, Spec{Type: TypeBool}
	for _, c := range []struct {
		s        Spec
		in, want string
	}{
		{str, "eu-west", "eu-west"}, {str, "", Invalid}, {str, Other, Invalid}, {str, string(make([]byte, 257)), Invalid},
		{num, "007", "7"}, {num, "+12", "12"}, {num, "-3", "-3"}, {num, "1.5", Invalid}, {num, "ten", Invalid},
		{flag, "TRUE", "true"}, {flag, "0", "false"}, {flag, "yes", Invalid},
	} {
		require.Equal(t, c.want, c.s.Normalize(c.in), "%s %q", c.s.Type, c.in)
	}
}

func TestFoldKeepsTheCapPerTenant(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := NewFolder([]Spec{{"region", TypeString, 2}, {"build", TypeInt, 5}}, reg)
	fold := func(tenant string, meta map[string]string) map[string]string { return f.Fold(tenant, meta) }
	require.Nil(t, fold("t1", map[string]string{"other": "x"}), "undeclared keys give no dimensions")
	require.Equal(t, map[string]string{"region": "eu"}, fold("t1", map[string]string{"region": "eu", "other": "x"}))
	require.Equal(t, map[string]string{"region": "us", "build": "12"}, fold("t1", map[string]string{"region": "us", "build": "012"}))
	require.Equal(t, map[string]string{"region": Other}, fold("t1", map[string]string{"region": "ap"}), "a third region is past the cap")
	require.Equal(t, map[string]string{"region": "eu"}, fold("t1", map[string]string{"region": "eu"}), "a kept value stays kept")
	require.Equal(t, map[string]string{"region": "ap"}, fold("t2", map[string]string{"region": "ap"}), "each tenant has its own cap")
	require.Equal(t, map[string]string{"build": Invalid}, fold("t1", map[string]string{"build": "beta"}))
	require.Equal(t, 1.0, testutil.ToFloat64(f.folded.WithLabelValues("region", "cardinality")))
	require.Equal(t, 1.0, testutil.ToFloat64(f.folded.WithLabelValues("build", "invalid")))

	// Seeded values count against the cap, as after a restart.
	g := NewFolder([]Spec{{"region", TypeString, 2}}, nil)
	g.Seed("t1", "region", []string{"eu", Other, "us", "ap"})
	require.Equal(t, "us", g.Fold("t1", map[string]string{"region": "us"})["region"])
	require.Equal(t, Other, g.Fold("t1", map[string]string{"region": "ap"})["region"], "the seed kept the first two values only")
	var nilFolder *Folder
	require.Nil(t, nilFolder.Fold("t1", map[string]string{"region": "eu"}))
}

// Many goroutines folding 100 values under a cap of 30: exactly 30 are
// ever kept, a value once kept is never folded, and the metric counts
// every fold.
func TestFoldUnderConcurrency(t *testing.T) {
	f := NewFolder([]Spec{{"v", TypeString, 30}}, prometheus.NewRegistry())
	var mu sync.Mutex
	kept, folded := map[string]bool{}, map[string]int{}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for range 2000 {
				in := fmt.Sprintf("v%d", rng.IntN(100))
				out := f.Fold("t", map[string]string{"v": in})["v"]
				mu.Lock()
				if out == Other {
					folded[in]++
				} else {
					require.Equal(t, in, out)
					kept[in] = true
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	require.Len(t, kept, 30)
	total := 0
	for v, n := range folded {
		require.False(t, kept[v], "%s was kept and folded", v)
		total += n
	}
	require.Equal(t, float64(total), testutil.ToFloat64(f.folded.WithLabelValues("v", "cardinality")))
}
