package flashsys

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestImportURL serves an image over HTTP from the test process; the first
// response breaks off after 64 KiB, so the CLI must resume with Range.
func TestImportURL(t *testing.T) {
	w := newWorld(t)
	content, _ := os.ReadFile(w.build(t, noiseTree(t, 300000), "web", "3"))
	var reqs, ranged atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Range") != "" {
			ranged.Add(1)
		}
		if reqs.Add(1) == 1 {
			rw.Header().Set("Content-Length", strconv.Itoa(len(content)))
			rw.Header().Set("ETag", `"x"`)
			rw.WriteHeader(http.StatusOK)
			rw.Write(content[:64<<10])
			rw.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
		rw.Header().Set("ETag", `"x"`)
		http.ServeContent(rw, r, "web.otok", time.Unix(0, 0), bytes.NewReader(content))
	}))
	defer srv.Close()
	o := w.ok("image", "import", srv.URL+"/web.otok")
	if !strings.Contains(o, "imported web:3") || ranged.Load() != 1 {
		t.Fatalf("import: %s (ranged requests: %d)", o, ranged.Load())
	}
	w.ok("image", "inspect", "--verify", "web:3")
	notFound := httptest.NewServer(http.NotFoundHandler())
	defer notFound.Close()
	if _, e, code := w.run(nil, "image", "import", notFound.URL+"/x.otok"); code != 1 || !strings.Contains(e, "404") {
		t.Fatalf("404: %d %s", code, e)
	}
}
