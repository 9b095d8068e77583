package flash

import (
	"crypto/sha256"
	"hash"
	"io"
	"sync/atomic"
)

// hashCounter hashes and counts what is read through it.
type hashCounter struct {
	r io.Reader
	h hash.Hash
	n int64
}

func newHashCounter(r io.Reader) *hashCounter { return &hashCounter{r: r, h: sha256.New()} }

func (c *hashCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.h.Write(p[:n])
	c.n += int64(n)
	return n, err
}

func (c *hashCounter) Sum() []byte { return c.h.Sum(nil) }

// teeBuf is one buffer of a hashWriter's pool.
type teeBuf struct {
	b    []byte
	n    int
	refs atomic.Int32
}

// hashWriter hashes and writes a stream on two goroutines of its own: the
// caller reads into a buffer from a fixed pool and submits it; the buffer
// goes to the hasher and to the writer, and back to the pool when both are
// done with it. sha256 (the slowest stage) and the write (which may block
// on the disk) overlap each other and the caller's next read; memory stays
// at nbuf×size. Both see the same bytes in the same order: the hash is of
// exactly what was written.
//
// The owner must call close on every path: it stops both goroutines.
type hashWriter struct {
	h          hash.Hash
	w          io.Writer
	free       chan *teeBuf
	toHash     chan *teeBuf
	toWrite    chan *teeBuf
	hashDone   chan struct{}
	writeDone  chan struct{}
	failed     atomic.Bool
	werr       error             // the writer's first error; read after writeDone
	afterWrite func(total int64) // called on the writer goroutine after each write
	finish     func() error      // called on the writer goroutine after the last write of a complete stream
	complete   bool              // set before the channels close
	closed     bool
}

func newHashWriter(h hash.Hash, w io.Writer, nbuf, size int, afterWrite func(int64), finish func() error) *hashWriter {
	p := &hashWriter{h: h, w: w, free: make(chan *teeBuf, nbuf), toHash: make(chan *teeBuf, nbuf), toWrite: make(chan *teeBuf, nbuf),
		hashDone: make(chan struct{}), writeDone: make(chan struct{}), afterWrite: afterWrite, finish: finish}
	for i := 0; i < nbuf; i++ {
		p.free <- &teeBuf{b: alignedBuffer(size)}
	}
	go func() {
		defer close(p.hashDone)
		for b := range p.toHash {
			p.h.Write(b.b[:b.n])
			p.release(b)
		}
	}()
	go func() {
		defer close(p.writeDone)
		var total int64
		for b := range p.toWrite {
			if p.werr == nil {
				if _, err := p.w.Write(b.b[:b.n]); err != nil {
					p.werr = err
					p.failed.Store(true)
				} else if total += int64(b.n); p.afterWrite != nil {
					p.afterWrite(total)
				}
			}
			p.release(b)
		}
		if p.werr == nil && p.complete && p.finish != nil {
			p.werr = p.finish()
		}
	}()
	return p
}

// release returns b to the pool once both the hasher and the writer have
// released it.
func (p *hashWriter) release(b *teeBuf) {
	if b.refs.Add(-1) == 0 {
		p.free <- b
	}
}

// buffer returns a free buffer (blocking while all are in flight).
func (p *hashWriter) buffer() *teeBuf { return <-p.free }

// put gives back a buffer that was not submitted.
func (p *hashWriter) put(b *teeBuf) { p.free <- b }

// submit queues b.b[:n] for hashing and writing; b must not be touched
// afterwards.
func (p *hashWriter) submit(b *teeBuf, n int) {
	b.n = n
	b.refs.Store(2)
	p.toHash <- b
	p.toWrite <- b
}

// writeFailed reports whether a write has failed (close returns the error).
func (p *hashWriter) writeFailed() bool { return p.failed.Load() }

// close waits until everything submitted is hashed and written, and stops
// both goroutines. complete: the stream was read to its end and is wanted,
// so finish (fsync) runs after the last write, overlapping the hasher's
// last blocks. It returns the first write or finish error.
func (p *hashWriter) close(complete bool) error {
	if p.closed {
		return p.werr
	}
	p.closed = true
	p.complete = complete
	close(p.toHash)
	close(p.toWrite)
	<-p.hashDone
	<-p.writeDone
	return p.werr
}
