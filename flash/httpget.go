package flash

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// A minimal HTTP/1.1 GET client: one request per connection, Range
// headers, Content-Length or chunked bodies, TLS by crypto/tls. It exists
// because net/http adds about 1.3 MB to the mipsle binary and image
// downloads are its only use on the device. No proxies, no compression,
// no keep-alive; redirects are followed by OpenURL.

const (
	httpMaxHeader   = 64 << 10
	httpIdleTimeout = 30 * time.Second
	httpDialTimeout = 15 * time.Second
)

type httpResponse struct {
	status int
	text   string
	header map[string]string // lower-case names; repeated headers joined with ", "
	length int64             // -1 unknown
	body   io.ReadCloser
}

func (r *httpResponse) get(name string) string { return r.header[strings.ToLower(name)] }

// httpGet sends GET url with extra headers and returns the response with
// its body unread.
func httpGet(ctx context.Context, u *url.URL, extra map[string]string, tlsConf *tls.Config) (*httpResponse, error) {
	host := u.Hostname()
	port := u.Port()
	switch u.Scheme {
	case "http":
		if port == "" {
			port = "80"
		}
	case "https":
		if port == "" {
			port = "443"
		}
	default:
		return nil, fmt.Errorf("unsupported scheme %q", u.Scheme)
	}
	d := net.Dialer{Timeout: httpDialTimeout}
	raw, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, port))
	if err != nil {
		return nil, err
	}
	conn := raw
	if u.Scheme == "https" {
		c := &tls.Config{ServerName: host}
		if tlsConf != nil {
			c = tlsConf.Clone()
			if c.ServerName == "" {
				c.ServerName = host
			}
		}
		tc := tls.Client(raw, c)
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, err
		}
		conn = tc
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	fail := func(err error) (*httpResponse, error) {
		stop()
		conn.Close()
		return nil, err
	}
	var req strings.Builder
	fmt.Fprintf(&req, "GET %s HTTP/1.1\r\nHost: %s\r\nAccept-Encoding: identity\r\nConnection: close\r\n", u.RequestURI(), u.Host)
	for k, v := range extra {
		if strings.ContainsAny(k+v, "\r\n") {
			return fail(errors.New("bad header"))
		}
		fmt.Fprintf(&req, "%s: %s\r\n", k, v)
	}
	req.WriteString("\r\n")
	conn.SetDeadline(time.Now().Add(httpIdleTimeout))
	if _, err := io.WriteString(conn, req.String()); err != nil {
		return fail(err)
	}
	br := bufio.NewReaderSize(&deadlineConn{conn}, 32<<10)
	resp := &httpResponse{header: map[string]string{}, length: -1}
	total := 0
	line := func() (string, error) {
		l, err := br.ReadString('\n')
		total += len(l)
		if err != nil {
			return "", err
		}
		if total > httpMaxHeader {
			return "", errors.New("response header too large")
		}
		return strings.TrimRight(l, "\r\n"), nil
	}
	status, err := line()
	if err != nil {
		return fail(fmt.Errorf("read response: %w", err))
	}
	proto, rest, _ := strings.Cut(status, " ")
	code, text, _ := strings.Cut(rest, " ")
	if !strings.HasPrefix(proto, "HTTP/1.") {
		return fail(fmt.Errorf("malformed status line %q", status))
	}
	if resp.status, err = strconv.Atoi(code); err != nil || resp.status < 100 || resp.status > 999 {
		return fail(fmt.Errorf("malformed status line %q", status))
	}
	resp.text = text
	for {
		l, err := line()
		if err != nil {
			return fail(fmt.Errorf("read response header: %w", err))
		}
		if l == "" {
			break
		}
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			return fail(fmt.Errorf("malformed header line %q", l))
		}
		k, v = strings.ToLower(strings.TrimSpace(k)), strings.TrimSpace(v)
		if old, dup := resp.header[k]; dup {
			v = old + ", " + v
		}
		resp.header[k] = v
	}
	closer := func() error { stop(); return conn.Close() }
	switch {
	case strings.EqualFold(resp.get("Transfer-Encoding"), "chunked"):
		resp.body = &bodyReader{r: &chunkedReader{r: br}, close: closer}
	case resp.get("Transfer-Encoding") != "" && !strings.EqualFold(resp.get("Transfer-Encoding"), "identity"):
		return fail(fmt.Errorf("unsupported transfer encoding %q", resp.get("Transfer-Encoding")))
	case resp.get("Content-Length") != "":
		n, err := strconv.ParseInt(resp.get("Content-Length"), 10, 64)
		if err != nil || n < 0 {
			return fail(fmt.Errorf("bad Content-Length %q", resp.get("Content-Length")))
		}
		resp.length = n
		resp.body = &bodyReader{r: &exactReader{r: br, n: n}, close: closer}
	default:
		resp.body = &bodyReader{r: br, close: closer}
	}
	return resp, nil
}

// deadlineConn pushes the idle deadline forward on every read.
type deadlineConn struct{ c net.Conn }

func (d *deadlineConn) Read(p []byte) (int, error) {
	d.c.SetReadDeadline(time.Now().Add(httpIdleTimeout))
	return d.c.Read(p)
}

type bodyReader struct {
	r     io.Reader
	close func() error
}

func (b *bodyReader) Read(p []byte) (int, error) { return b.r.Read(p) }
func (b *bodyReader) Close() error               { return b.close() }

// exactReader reads n bytes; EOF before that is io.ErrUnexpectedEOF.
type exactReader struct {
	r io.Reader
	n int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.n {
		p = p[:e.n]
	}
	n, err := e.r.Read(p)
	e.n -= int64(n)
	if err == io.EOF && e.n > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// chunkedReader decodes Transfer-Encoding: chunked (RFC 9112 §7.1).
type chunkedReader struct {
	r    *bufio.Reader
	left int64
	done bool
}

func (c *chunkedReader) Read(p []byte) (int, error) {
	if c.done {
		return 0, io.EOF
	}
	if c.left == 0 {
		l, err := c.r.ReadString('\n')
		if err != nil {
			return 0, io.ErrUnexpectedEOF
		}
		l = strings.TrimRight(l, "\r\n")
		if i := strings.IndexByte(l, ';'); i >= 0 {
			l = l[:i]
		}
		n, err := strconv.ParseInt(strings.TrimSpace(l), 16, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("bad chunk size %q", l)
		}
		if n == 0 {
			c.done = true
			return 0, io.EOF
		}
		c.left = n
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if c.left == 0 && err == nil {
		if _, err := c.r.Discard(2); err != nil { // CRLF after the chunk
			return n, io.ErrUnexpectedEOF
		}
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}
