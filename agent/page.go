package agent

import (
	"embed"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
)

// static holds the live page: index.html and the assets it loads. They
// are plain files, served as they are: no build step, nothing fetched from
// elsewhere.
//
//go:embed static
var static embed.FS

// pageCSP is the Content-Security-Policy of the page and its assets: only
// the agent's own scripts, styles and connections; no inline script, no
// plugins, no framing. Data the page inserts is text, and this policy is
// a second line should that ever slip.
const pageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; " +
	"connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// pageHandler serves the live page: GET / is index.html and /static/...
// its script and style sheet, all embedded in the binary. Any other path
// is 404; methods other than GET and HEAD are 405.
func pageHandler() http.Handler {
	// The embedded tree has the files under static/, which is the URL
	// path too.
	assets := http.FileServerFS(static)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", pageCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		name, isAsset := strings.CutPrefix(r.URL.Path, "/static/")
		switch {
		case r.URL.Path == "/":
			b, err := fs.ReadFile(static, "static/index.html")
			if err != nil {
				http.Error(w, "page missing", http.StatusInternalServerError)
				return
			}
			h.Set("Content-Type", "text/html; charset=utf-8")
			h.Set("Content-Length", strconv.Itoa(len(b)))
			if r.Method == http.MethodGet {
				_, _ = w.Write(b)
			}
		case isAsset && name != "" && name != "index.html" && !strings.Contains(name, "/"):
			// No directory listings, and the page itself only at /.
			assets.ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	})
}
