package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/fxamacker/cbor/v2"
)

// Client talks to a running agent over its socket. Methods are safe for
// one goroutine at a time per call; a Client may serve many calls in turn.
type Client struct {
	mu   sync.Mutex
	conn net.Conn
	path string
	id   uint64
}

// Dial connects to the agent's socket. An absent agent is CodeUnavailable
// (the CLI then drives runtime and flash itself); a socket the caller may
// not open is CodePermission.
func Dial(ctx context.Context, path string) (*Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		switch {
		case errors.Is(err, os.ErrNotExist), errors.Is(err, syscall.ECONNREFUSED):
			return nil, Errorf(CodeUnavailable, "agent: not running (socket %s)", path)
		case errors.Is(err, os.ErrPermission):
			return nil, Errorf(CodePermission, "agent: socket %s: permission denied (root only)", path)
		}
		return nil, Errorf(CodeUnavailable, "agent: %v", err)
	}
	return &Client{conn: conn, path: path}, nil
}

// Close hangs up.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil {
		return nil
	}
	err := c.conn.Close()
	c.conn = nil
	return err
}

// Call sends one request and decodes the reply body into reply (may be nil).
func (c *Client) Call(ctx context.Context, op string, req, reply any) error {
	return c.do(ctx, op, req, func(body cbor.RawMessage) error {
		if reply == nil || len(body) == 0 {
			return nil
		}
		return decMode.Unmarshal(body, reply)
	}, false)
}

// Stream sends a streaming request and calls each for every reply body
// until the agent ends the stream, ctx ends, or each fails. A stream uses
// up its connection; the next call dials again.
func (c *Client) Stream(ctx context.Context, op string, req any, each func(body cbor.RawMessage) error) error {
	return c.do(ctx, op, req, each, true)
}

func (c *Client) do(ctx context.Context, op string, req any, each func(cbor.RawMessage) error, stream bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil { // the last call was a stream, which used up the connection
		conn, err := (&net.Dialer{}).DialContext(ctx, "unix", c.path)
		if err != nil {
			return Errorf(CodeUnavailable, "agent: %v", err)
		}
		c.conn = conn
	}
	if stream {
		defer func() { c.conn.Close(); c.conn = nil }()
	}
	c.id++
	id := c.id
	var body []byte
	if req != nil {
		var err error
		if body, err = encMode.Marshal(req); err != nil {
			return Errorf(CodeInvalid, "%s: encode request: %v", op, err)
		}
	}
	// The callback may still run after do returns (stop does not wait for
	// it), when a stream has already cleared c.conn: use this call's conn.
	conn := c.conn
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	if err := writeFrame(c.conn, wireRequest{ID: id, Op: op, Body: body}); err != nil {
		return c.connErr(ctx, err)
	}
	for {
		b, err := readFrame(c.conn)
		if err != nil {
			return c.connErr(ctx, err)
		}
		var r wireReply
		if err := decMode.Unmarshal(b, &r); err != nil {
			return Errorf(CodeInternal, "agent: bad reply: %v", err)
		}
		if r.ID != id && r.ID != 0 {
			return Errorf(CodeInternal, "agent: reply %d to request %d", r.ID, id)
		}
		if r.Err != nil {
			return r.Err
		}
		if err := each(r.Body); err != nil {
			return err
		}
		if !r.More {
			return nil
		}
	}
}

func (c *Client) connErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return Errorf(CodeUnavailable, "agent: %v", err)
}

// Typed methods, one per op.

func (c *Client) Run(ctx context.Context, s *ContainerSpec) (*ContainerStatus, error) {
	var r ContainerStatus
	return &r, c.Call(ctx, OpRun, &RunRequest{Spec: *s}, &r)
}

func (c *Client) Create(ctx context.Context, s *ContainerSpec) (*ContainerStatus, error) {
	var r ContainerStatus
	return &r, c.Call(ctx, OpCreate, &RunRequest{Spec: *s}, &r)
}

func (c *Client) Start(ctx context.Context, name string) (*ContainerStatus, error) {
	var r ContainerStatus
	return &r, c.Call(ctx, OpStart, &NameRequest{Name: name}, &r)
}

func (c *Client) Stop(ctx context.Context, name string, timeout time.Duration) (*ContainerStatus, error) {
	var r ContainerStatus
	return &r, c.Call(ctx, OpStop, &StopRequest{Name: name, Timeout: timeout}, &r)
}

func (c *Client) Restart(ctx context.Context, name string, timeout time.Duration) (*ContainerStatus, error) {
	var r ContainerStatus
	return &r, c.Call(ctx, OpRestart, &StopRequest{Name: name, Timeout: timeout}, &r)
}

func (c *Client) Remove(ctx context.Context, name string, force bool) error {
	return c.Call(ctx, OpRemove, &RemoveRequest{Name: name, Force: force}, nil)
}

func (c *Client) List(ctx context.Context, all bool) ([]ContainerStatus, error) {
	var r ListReply
	err := c.Call(ctx, OpList, &ListRequest{All: all}, &r)
	return r.Containers, err
}

func (c *Client) Inspect(ctx context.Context, name string) (*ContainerStatus, error) {
	var r ContainerStatus
	return &r, c.Call(ctx, OpInspect, &NameRequest{Name: name}, &r)
}

func (c *Client) Stats(ctx context.Context, names ...string) ([]Stats, error) {
	var r StatsReply
	err := c.Call(ctx, OpStats, &StatsRequest{Names: names}, &r)
	return r.Stats, err
}

func (c *Client) Reload(ctx context.Context) (*ReloadReply, error) {
	var r ReloadReply
	return &r, c.Call(ctx, OpReload, nil, &r)
}

func (c *Client) Status(ctx context.Context) (*StatusReply, error) {
	var r StatusReply
	return &r, c.Call(ctx, OpStatus, nil, &r)
}

func (c *Client) ImageImport(ctx context.Context, path string) (*ImageInfo, error) {
	return c.ImageImportWith(ctx, &ImageImportRequest{Path: path})
}

// ImageImportWith imports with options (a bare squashfs or tarball, an
// unsigned image).
func (c *Client) ImageImportWith(ctx context.Context, req *ImageImportRequest) (*ImageInfo, error) {
	var r ImageInfo
	return &r, c.Call(ctx, OpImageImport, req, &r)
}

// Update changes a container's limits (see UpdateRequest).
func (c *Client) Update(ctx context.Context, req *UpdateRequest) (*UpdateReply, error) {
	var r UpdateReply
	return &r, c.Call(ctx, OpUpdate, req, &r)
}

// Kill sends signal ("" = SIGKILL) to a container's init.
func (c *Client) Kill(ctx context.Context, name, signal string) (*ContainerStatus, error) {
	var r ContainerStatus
	return &r, c.Call(ctx, OpKill, &KillRequest{Name: name, Signal: signal}, &r)
}

func (c *Client) ImageList(ctx context.Context) ([]ImageInfo, error) {
	var r ImageListReply
	err := c.Call(ctx, OpImageList, nil, &r)
	return r.Images, err
}

func (c *Client) ImageRemove(ctx context.Context, ref string) error {
	return c.Call(ctx, OpImageRemove, &ImageRequest{Ref: ref}, nil)
}

func (c *Client) ImageGC(ctx context.Context) (*GCReply, error) {
	var r GCReply
	return &r, c.Call(ctx, OpImageGC, nil, &r)
}

func (c *Client) DF(ctx context.Context) (*DFReply, error) {
	var r DFReply
	return &r, c.Call(ctx, OpDF, nil, &r)
}

// Logs streams a container's output to each.
func (c *Client) Logs(ctx context.Context, r *LogsRequest, each func([]byte) error) error {
	return c.Stream(ctx, OpLogs, r, func(b cbor.RawMessage) error {
		if len(b) == 0 {
			return nil
		}
		var ch LogsChunk
		if err := decMode.Unmarshal(b, &ch); err != nil {
			return fmt.Errorf("agent: bad logs reply: %w", err)
		}
		return each(ch.Data)
	})
}

// Events streams events to each.
func (c *Client) Events(ctx context.Context, r *EventsRequest, each func(*Event) error) error {
	return c.Stream(ctx, OpEvents, r, func(b cbor.RawMessage) error {
		if len(b) == 0 {
			return nil
		}
		var e Event
		if err := decMode.Unmarshal(b, &e); err != nil {
			return fmt.Errorf("agent: bad event: %w", err)
		}
		return each(&e)
	})
}

// Attach connects to a container's console: out gets the console's
// output; what arrives on in (keystrokes, window sizes) goes to the
// console. It returns when the container exits (nil), the agent refuses
// (the error), ctx ends, or in is closed (detach: nil). It uses up the
// client's connection.
func (c *Client) Attach(ctx context.Context, req *AttachRequest, out func([]byte) error, in <-chan AttachInput) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	conn := c.conn
	c.conn = nil
	if conn == nil {
		var err error
		if conn, err = (&net.Dialer{}).DialContext(ctx, "unix", c.path); err != nil {
			return Errorf(CodeUnavailable, "agent: %v", err)
		}
	}
	defer conn.Close()
	c.id++
	id := c.id
	body, err := encMode.Marshal(req)
	if err != nil {
		return Errorf(CodeInvalid, "attach: encode request: %v", err)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	var wmu sync.Mutex
	if err := writeFrame(conn, wireRequest{ID: id, Op: OpAttach, Body: body}); err != nil {
		return c.connErr(ctx, err)
	}
	detached := make(chan struct{})
	go func() {
		for x := range in {
			b, err := encMode.Marshal(x)
			if err != nil {
				continue
			}
			wmu.Lock()
			err = writeFrame(conn, wireRequest{ID: id, Op: OpAttach + ".input", Body: b})
			wmu.Unlock()
			if err != nil {
				return
			}
		}
		// detach: hang up; the read below ends
		close(detached)
		_ = conn.SetReadDeadline(time.Now())
	}()
	for {
		b, err := readFrame(conn)
		if err != nil {
			select {
			case <-detached:
				return nil
			default:
			}
			return c.connErr(ctx, err)
		}
		var r wireReply
		if err := decMode.Unmarshal(b, &r); err != nil {
			return Errorf(CodeInternal, "agent: bad reply: %v", err)
		}
		if r.Err != nil {
			return r.Err
		}
		if len(r.Body) > 0 {
			var ch LogsChunk
			if err := decMode.Unmarshal(r.Body, &ch); err != nil {
				return Errorf(CodeInternal, "agent: bad console chunk: %v", err)
			}
			if err := out(ch.Data); err != nil {
				return err
			}
		}
		if !r.More {
			return nil
		}
	}
}
