package flash

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// flakyServer serves content with Range support; the first `breaks`
// responses are cut off after `cut` bytes.
func flakyServer(t *testing.T, content []byte, breaks int32, cut int) (*httptest.Server, *atomic.Int32) {
	var n, ranges atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Range") != "" {
			ranges.Add(1)
		}
		w.Header().Set("ETag", `"v1"`)
		if n.Add(1) <= breaks {
			// Send headers for the full body, then part of it, then drop
			// the connection.
			w.Header().Set("Accept-Ranges", "bytes")
			off := 0
			if rg := r.Header.Get("Range"); rg != "" {
				var start int
				for _, c := range strings.TrimSuffix(strings.TrimPrefix(rg, "bytes="), "-") {
					start = start*10 + int(c-'0')
				}
				off = start
				w.Header().Set("Content-Range", "bytes "+itoa(off)+"-"+itoa(len(content)-1)+"/"+itoa(len(content)))
				w.Header().Set("Content-Length", itoa(len(content)-off))
				w.WriteHeader(http.StatusPartialContent)
			} else {
				w.Header().Set("Content-Length", itoa(len(content)))
				w.WriteHeader(http.StatusOK)
			}
			end := off + cut
			if end > len(content) {
				end = len(content)
			}
			w.Write(content[off:end])
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
		http.ServeContent(w, r, "img.otok", time.Unix(0, 0), bytes.NewReader(content))
	}))
	t.Cleanup(srv.Close)
	return srv, &ranges
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestImportURLResumes(t *testing.T) {
	sq := makeSquashfs(t, map[string]string{"big": noise(400000)})
	otok := makeOtok(t, sq, imgManifest("web", "1"), testKey())
	srv, ranges := flakyServer(t, otok, 2, 100000)
	st := openTestStore(t, t.TempDir(), testKey())
	body, size, err := OpenURL(bg, srv.URL+"/img.otok", FetchOptions{Backoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	if size != int64(len(otok)) {
		t.Fatalf("size %d", size)
	}
	res, err := st.ImportOtok(bg, body, ImportOptions{Source: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	if ranges.Load() != 2 {
		t.Fatalf("%d range requests, want 2", ranges.Load())
	}
	if err := st.Verify(res.Image); err != nil {
		t.Fatal(err)
	}
}

func TestOpenURLErrors(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	if _, _, err := OpenURL(bg, srv.URL+"/x", FetchOptions{}); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("404: %v", err)
	}
	// A server that always breaks: the retry budget ends it.
	content := bytes.Repeat([]byte("x"), 10000)
	bad, _ := flakyServer(t, content, 100, 10)
	body, _, err := OpenURL(bg, bad.URL, FetchOptions{MaxRetries: 3, Backoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.Copy(io.Discard, body)
	if err == nil || !strings.Contains(err.Error(), "after 3 resumptions") {
		t.Fatalf("got %v", err)
	}
}

func TestOpenURLTLSRedirectChunked(t *testing.T) {
	content := []byte(noise(200000))
	mux := http.NewServeMux()
	mux.HandleFunc("/img", func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "img", time.Unix(0, 0), bytes.NewReader(content))
	})
	mux.HandleFunc("/chunked", func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i < len(content); i += 7000 {
			end := min(i+7000, len(content))
			w.Write(content[i:end])
			w.(http.Flusher).Flush()
		}
	})
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/img", http.StatusFound) })
	srv := httptest.NewTLSServer(mux)
	defer srv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	tlsConf := &tls.Config{RootCAs: pool}
	for _, path := range []string{"/img", "/moved", "/chunked"} {
		body, size, err := OpenURL(bg, srv.URL+path, FetchOptions{TLS: tlsConf})
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		got, err := io.ReadAll(body)
		body.Close()
		if err != nil || !bytes.Equal(got, content) {
			t.Fatalf("%s: %d bytes, %v", path, len(got), err)
		}
		if path != "/chunked" && size != int64(len(content)) {
			t.Fatalf("%s: size %d", path, size)
		}
	}
	// Untrusted certificate.
	if _, _, err := OpenURL(bg, srv.URL+"/img", FetchOptions{}); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("untrusted cert: %v", err)
	}
	// https → http redirect is refused.
	plain := httptest.NewServer(mux)
	defer plain.Close()
	mux.HandleFunc("/down", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, plain.URL+"/img", http.StatusFound) })
	if _, _, err := OpenURL(bg, srv.URL+"/down", FetchOptions{TLS: tlsConf}); err == nil || !strings.Contains(err.Error(), "refusing redirect") {
		t.Fatalf("downgrade: %v", err)
	}
}

func FuzzChunkedReader(f *testing.F) {
	f.Add([]byte("5\r\nhello\r\n0\r\n\r\n"))
	f.Add([]byte("3;ext=1\r\nabc\r\nffffffffffffffff\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := &chunkedReader{r: bufio.NewReader(bytes.NewReader(in))}
		out, _ := io.ReadAll(io.LimitReader(r, 1<<20))
		if len(out) > len(in) {
			t.Fatalf("decoded %d bytes from %d", len(out), len(in))
		}
	})
}
