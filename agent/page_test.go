package agent

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func servePage(t *testing.T, method, path string) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	pageHandler().ServeHTTP(w, httptest.NewRequest(method, path, nil))
	return w
}

func embedded(t *testing.T, name string) string {
	t.Helper()
	b, err := fs.ReadFile(static, "static/"+name)
	require.NoError(t, err)
	return string(b)
}

func TestPageServesEmbeddedFiles(t *testing.T) {
	for _, tc := range []struct {
		path, file, ctype string
	}{
		{"/", "index.html", "text/html; charset=utf-8"},
		{"/static/app.js", "app.js", "text/javascript; charset=utf-8"},
		{"/static/style.css", "style.css", "text/css; charset=utf-8"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			w := servePage(t, http.MethodGet, tc.path)
			require.Equal(t, http.StatusOK, w.Code)
			assert.Equal(t, tc.ctype, w.Header().Get("Content-Type"))
			assert.Equal(t, embedded(t, tc.file), w.Body.String())
			assert.Equal(t, "nosniff", w.Header().Get("X-Content-Type-Options"))
			assert.Equal(t, "no-store", w.Header().Get("Cache-Control"))
			csp := w.Header().Get("Content-Security-Policy")
			assert.Contains(t, csp, "script-src 'self'")
			assert.Contains(t, csp, "default-src 'none'")
			assert.NotContains(t, csp, "unsafe-inline")
			assert.NotContains(t, csp, "unsafe-eval")

			h := servePage(t, http.MethodHead, tc.path)
			assert.Equal(t, http.StatusOK, h.Code)
			assert.Equal(t, tc.ctype, h.Header().Get("Content-Type"))
		})
	}
}

func TestPageRefusesOtherPaths(t *testing.T) {
	for _, path := range []string{
		"/static/", "/static", "/static/index.html", "/static/nothing.js",
		"/static/../page.go", "/index.html", "/app.js", "/page.go",
	} {
		w := servePage(t, http.MethodGet, path)
		assert.Equal(t, http.StatusNotFound, w.Code, "GET %s", path)
		assert.NotContains(t, w.Body.String(), "app.js", "GET %s lists or serves a file", path)
	}
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, "PATCH"} {
		w := servePage(t, m, "/")
		assert.Equal(t, http.StatusMethodNotAllowed, w.Code, m)
		assert.Equal(t, "GET, HEAD", w.Header().Get("Allow"))
	}
}

// TestPageAssetsAreSelfContained checks what the CSP would otherwise only
// enforce in the browser: the page loads nothing from elsewhere, has no
// inline script or style, and its script never parses data as HTML.
func TestPageAssetsAreSelfContained(t *testing.T) {
	entries, err := fs.ReadDir(static, "static")
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	require.ElementsMatch(t, []string{"index.html", "app.js", "style.css"}, names)

	external := regexp.MustCompile(`(?i)[a-z][a-z0-9+.-]*://|(src|href|action)\s*=\s*["']?//|@import|url\(`)
	for _, name := range names {
		body := embedded(t, name)
		assert.Empty(t, external.FindAllString(body, -1), "%s refers to something outside the agent", name)
	}

	html := embedded(t, "index.html")
	assert.NotRegexp(t, `(?i)<script(\s[^>]*)?>\s*[^<\s]`, html, "an inline script")
	assert.NotRegexp(t, `(?i)<style`, html, "an inline style sheet")
	assert.NotRegexp(t, `(?i)\s(on[a-z]+|style)\s*=`, html, "an inline handler or style")
	refs := regexp.MustCompile(`(?:src|href)="([^"]+)"`).FindAllStringSubmatch(html, -1)
	require.NotEmpty(t, refs)
	for _, r := range refs {
		if strings.HasPrefix(r[1], "v1/") {
			continue // the API, not an asset
		}
		w := servePage(t, http.MethodGet, "/"+r[1])
		assert.Equal(t, http.StatusOK, w.Code, "index.html refers to %s", r[1])
	}

	js := embedded(t, "app.js")
	for _, sink := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "setAttribute('on", "javascript:"} {
		assert.NotContains(t, js, sink, "app.js uses an HTML or code sink")
	}
}
