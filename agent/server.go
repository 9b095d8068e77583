package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/fxamacker/cbor/v2"
	"golang.org/x/sys/unix"
)

// The CLI transport: a unix socket (default /var/run/otok/otok.sock, mode
// 0600, so only root connects), CBOR frames (frame.go). One goroutine per
// connection, owned by Serve; requests on a connection are handled in
// order; a stream (logs -f, events -f) holds its connection until it ends
// or the peer closes it. Peers that are neither root nor the agent's user
// (possible only if someone loosens the socket mode) may call read-only ops.

// MaxConns bounds concurrent socket connections.
const MaxConns = 32

// Listen creates the socket, refusing if another agent answers on it and
// replacing a stale one.
func Listen(path string) (*net.UnixListener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("socket %s: %w", path, err)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, Errorf(CodeConflict, "socket %s: another agent is running", path)
	}
	_ = os.Remove(path)
	old := unix.Umask(0o177)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	unix.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("socket %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(true)
	return ln, nil
}

// Serve answers requests on ln until ctx ends, then closes ln and every
// connection and waits for their goroutines.
func (a *Agent) Serve(ctx context.Context, ln *net.UnixListener) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]struct{}{}
	stop := context.AfterFunc(ctx, func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	defer stop()
	sem := make(chan struct{}, MaxConns)
	var err error
	for {
		var c *net.UnixConn
		c, err = ln.AcceptUnix()
		if err != nil {
			if ctx.Err() != nil {
				err = nil
			}
			break
		}
		select {
		case sem <- struct{}{}:
		default:
			_ = writeFrame(c, wireReply{Err: Errorf(CodeUnavailable, "agent busy: %d connections", MaxConns)})
			c.Close()
			continue
		}
		mu.Lock()
		conns[c] = struct{}{}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			a.serveConn(ctx, c)
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
			c.Close()
		}()
	}
	ln.Close()
	mu.Lock()
	for c := range conns {
		c.Close()
	}
	mu.Unlock()
	wg.Wait()
	return err
}

// peerPrivileged: root or the agent's own user.
func peerPrivileged(c *net.UnixConn) bool {
	raw, err := c.SyscallConn()
	if err != nil {
		return false
	}
	var cred *unix.Ucred
	_ = raw.Control(func(fd uintptr) {
		cred, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	if err != nil || cred == nil {
		return false
	}
	return cred.Uid == 0 || int(cred.Uid) == os.Geteuid()
}

func (a *Agent) serveConn(ctx context.Context, c *net.UnixConn) {
	priv := peerPrivileged(c)
	for {
		b, err := readFrame(c)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !errors.Is(err, syscall.ECONNRESET) {
				// framing lost: say why, then hang up
				_ = writeFrame(c, wireReply{Err: Errorf(CodeInvalid, "request: %v", err)})
			}
			return
		}
		req, err := decodeRequest(b)
		if err != nil {
			id := uint64(0)
			if req != nil {
				id = req.ID
			}
			if writeFrame(c, wireReply{ID: id, Err: asError(err)}) != nil {
				return
			}
			continue
		}
		if !a.handle(ctx, c, req, priv) {
			return
		}
	}
}

// handle runs one request; false: the connection is unusable.
func (a *Agent) handle(ctx context.Context, c *net.UnixConn, req *wireRequest, priv bool) bool {
	reply := func(body any, err error, more bool) error {
		r := wireReply{ID: req.ID, Err: asError(err), More: more}
		if err == nil && body != nil {
			b, e := encMode.Marshal(body)
			if e != nil {
				r.Err = Errorf(CodeInternal, "%s: encode reply: %v", req.Op, e)
			} else {
				r.Body = b
			}
		}
		return writeFrame(c, r)
	}
	op := Ops[req.Op]
	if op == nil {
		return reply(nil, Errorf(CodeNotFound, "unknown op %q", req.Op), false) == nil
	}
	if op.Mutating && !priv {
		return reply(nil, Errorf(CodePermission, "%s: permission denied (root only)", req.Op), false) == nil
	}
	r := op.New()
	if err := decodeBody(req.Op, req.Body, r); err != nil {
		return reply(nil, err, false) == nil
	}
	if op.Duplex != nil {
		return a.duplex(ctx, c, op, r, reply)
	}
	if op.Stream == nil {
		body, err := op.Call(ctx, a, r)
		return reply(body, err, false) == nil
	}
	// A stream: watch for the peer hanging up (it sends nothing more).
	sctx, cancel := context.WithCancel(ctx)
	gone := make(chan struct{})
	go func() {
		defer close(gone)
		var one [1]byte
		_, _ = c.Read(one[:])
		cancel()
	}()
	err := op.Stream(sctx, a, r, func(v any) error { return reply(v, nil, true) })
	ok := reply(nil, err, false) == nil
	cancel()
	// unblock the watcher; the connection cannot be reused after a stream
	_ = c.SetReadDeadline(time.Now())
	<-gone
	_ = ok
	return false
}

// duplex runs an op that reads the peer's further frames (attach): each
// is a request frame whose body goes to the op's input; the peer hanging
// up (or a frame that does not decode) closes the input. Like a stream,
// it uses up the connection.
func (a *Agent) duplex(ctx context.Context, c *net.UnixConn, op *Op, r any, reply func(any, error, bool) error) bool {
	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	input := make(chan cbor.RawMessage, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(input)
		for {
			b, err := readFrame(c)
			if err != nil {
				return
			}
			req, err := decodeRequest(b)
			if err != nil {
				return
			}
			select {
			case input <- req.Body:
			case <-dctx.Done():
				return
			}
		}
	}()
	err := op.Duplex(dctx, a, r, func(v any) error { return reply(v, nil, true) }, input)
	_ = reply(nil, err, false)
	cancel()
	_ = c.SetReadDeadline(time.Now())
	<-done
	return false
}
