// Package web is the dashboard: static files built from web/src with
// pinned npm packages (npm ci && npm run build, or make web) into
// web/dist, which is committed and embedded in the binary, so running
// apimeter needs neither npm nor any network.
package web

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

//go:embed dist
var dist embed.FS

// Files are the built dashboard.
func Files() fs.FS {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		panic(err)
	}
	return sub
}

// securityHeaders keep the page to its own origin: no outside scripts,
// styles, fonts or frames, no inline code.
var securityHeaders = map[string]string{
	"Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; " +
		"connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
	"X-Content-Type-Options": "nosniff",
	"Referrer-Policy":        "no-referrer",
	"X-Frame-Options":        "DENY",
}

// Handler serves the dashboard: index.html at "/" and the built assets
// beside it. Assets are revalidated (the binary's files change with the
// binary, and their names do not).
func Handler() http.Handler {
	files := Files()
	static := http.FileServer(http.FS(files))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, v := range securityHeaders {
			w.Header().Set(k, v)
		}
		name := strings.TrimPrefix(path.Clean(r.URL.Path), "/")
		if name == "" || name == "index.html" {
			w.Header().Set("Cache-Control", "no-cache")
			b, err := fs.ReadFile(files, "index.html")
			if err != nil {
				http.Error(w, "the dashboard was not built", http.StatusNotFound)
				return
			}
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = w.Write(b)
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		static.ServeHTTP(w, r)
	})
}
