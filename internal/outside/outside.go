// Package outside finds the tools nobody here wrote that tests drive
// against apimeter: Python with pyarrow, DuckDB, pandas and Schemathesis
// (installed by .ci/run into a virtualenv named by APIMETER_PYTHON), and
// binaries on PATH. A missing tool skips the test, saying what to install;
// CI installs them all, so there a skip is visible in the log.
package outside

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Python returns an interpreter that imports every module named, or skips
// the test. It prefers APIMETER_PYTHON, then python3 on PATH.
func Python(t testing.TB, modules ...string) string {
	t.Helper()
	candidates := []string{os.Getenv("APIMETER_PYTHON")}
	if p, err := exec.LookPath("python3"); err == nil {
		candidates = append(candidates, p)
	}
	probe := "import " + strings.Join(append([]string{"sys"}, modules...), ", ")
	for _, py := range candidates {
		if py == "" {
			continue
		}
		if err := exec.Command(py, "-c", probe).Run(); err == nil {
			return py
		}
	}
	t.Skipf("no Python with %s: pip install -r .ci/requirements.txt and set APIMETER_PYTHON", strings.Join(modules, ", "))
	return ""
}

// Tool returns the path of a binary on PATH, or skips the test.
func Tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s is not installed (.ci/run installs it)", name)
	}
	return p
}
