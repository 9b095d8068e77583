package flash

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Images over http/https. The body is streamed straight into the import
// (nothing is staged); when the connection breaks, the download resumes
// where it stopped with a Range request (If-Range on the ETag or
// Last-Modified so a changed file is not spliced), up to MaxRetries times
// with backoff. Whatever happens, the digest check at the end of the
// import is the final word.

// FetchOptions configure OpenURL.
type FetchOptions struct {
	TLS        *tls.Config // nil = system roots
	MaxRetries int         // resumptions after a broken transfer; 0 = 5
	Backoff    time.Duration
	UserAgent  string
}

// IsURL reports whether s is an http or https URL.
func IsURL(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}

// OpenURL starts downloading url and returns the body stream and its
// length (-1 when the server does not say).
func OpenURL(ctx context.Context, rawURL string, opt FetchOptions) (io.ReadCloser, int64, error) {
	if opt.MaxRetries == 0 {
		opt.MaxRetries = 5
	}
	if opt.Backoff == 0 {
		opt.Backoff = 500 * time.Millisecond
	}
	if opt.UserAgent == "" {
		opt.UserAgent = "otok"
	}
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, 0, fmt.Errorf("%s: not an http(s) URL", rawURL)
	}
	r := &rangeReader{ctx: ctx, url: rawURL, u: u, opt: opt, size: -1}
	if err := r.open(); err != nil {
		return nil, 0, err
	}
	return r, r.size, nil
}

type rangeReader struct {
	ctx       context.Context
	url       string
	u         *url.URL
	opt       FetchOptions
	body      io.ReadCloser
	off, size int64
	validator string
	retries   int
	Resumes   int
}

const maxRedirects = 5

func (r *rangeReader) open() error {
	hdr := map[string]string{"User-Agent": r.opt.UserAgent}
	if r.off > 0 {
		hdr["Range"] = fmt.Sprintf("bytes=%d-", r.off)
		if r.validator != "" {
			hdr["If-Range"] = r.validator
		}
	}
	u := r.u
	var resp *httpResponse
	for redirects := 0; ; redirects++ {
		var err error
		resp, err = httpGet(r.ctx, u, hdr, r.opt.TLS)
		if err != nil {
			return fmt.Errorf("%s: %w", r.url, err)
		}
		switch resp.status {
		case 301, 302, 303, 307, 308:
			resp.body.Close()
			next, err := u.Parse(resp.get("Location"))
			if err != nil || resp.get("Location") == "" || redirects >= maxRedirects {
				return fmt.Errorf("%s: bad or too many redirects", r.url)
			}
			if u.Scheme == "https" && next.Scheme != "https" {
				return fmt.Errorf("%s: refusing redirect from https to %s", r.url, next.Scheme)
			}
			u = next
			continue
		}
		break
	}
	r.u = u // resume where the redirect led
	switch {
	case r.off == 0 && resp.status == 200:
		r.size = resp.length
		if et := resp.get("ETag"); et != "" && !strings.HasPrefix(et, "W/") {
			r.validator = et
		} else if lm := resp.get("Last-Modified"); lm != "" {
			r.validator = lm
		}
	case r.off > 0 && resp.status == 206:
		start, total, ok := parseContentRange(resp.get("Content-Range"))
		if !ok || start != r.off || (r.size >= 0 && total >= 0 && total != r.size) {
			resp.body.Close()
			return fmt.Errorf("%s: resume: server answered range %q for offset %d", r.url, resp.get("Content-Range"), r.off)
		}
	case r.off > 0 && resp.status == 200:
		resp.body.Close()
		return fmt.Errorf("%s: resume at %d: server does not support ranges or the file changed", r.url, r.off)
	default:
		resp.body.Close()
		return fmt.Errorf("%s: HTTP %d %s", r.url, resp.status, resp.text)
	}
	r.body = resp.body
	return nil
}

func parseContentRange(s string) (start, total int64, ok bool) {
	s, ok = strings.CutPrefix(s, "bytes ")
	if !ok {
		return 0, 0, false
	}
	rng, tot, ok := strings.Cut(s, "/")
	if !ok {
		return 0, 0, false
	}
	a, _, ok := strings.Cut(rng, "-")
	if !ok {
		return 0, 0, false
	}
	start, err := strconv.ParseInt(a, 10, 64)
	if err != nil {
		return 0, 0, false
	}
	total = -1
	if tot != "*" {
		if total, err = strconv.ParseInt(tot, 10, 64); err != nil {
			return 0, 0, false
		}
	}
	return start, total, true
}

func (r *rangeReader) Read(p []byte) (int, error) {
	for {
		n, err := r.body.Read(p)
		r.off += int64(n)
		if err == nil || n > 0 && err != io.EOF {
			return n, nil
		}
		if err == io.EOF {
			if r.size >= 0 && r.off < r.size {
				err = io.ErrUnexpectedEOF
			} else {
				return n, io.EOF
			}
		}
		if r.ctx.Err() != nil {
			return n, r.ctx.Err()
		}
		if r.retries >= r.opt.MaxRetries {
			return n, fmt.Errorf("%s: transfer broken at %d bytes after %d resumptions: %w", r.url, r.off, r.retries, err)
		}
		r.retries++
		r.Resumes++
		r.body.Close()
		select {
		case <-r.ctx.Done():
			return n, r.ctx.Err()
		case <-time.After(r.opt.Backoff << (r.retries - 1)):
		}
		if oerr := r.open(); oerr != nil {
			if errors.Is(oerr, context.Canceled) {
				return n, oerr
			}
			// Keep retrying on transient errors until the budget is spent.
			r.body = io.NopCloser(errReader{oerr})
		}
		if n > 0 {
			return n, nil
		}
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func (r *rangeReader) Close() error {
	if r.body != nil {
		return r.body.Close()
	}
	return nil
}
