package flash

import (
	"crypto/sha256"
	"hash"
	"io"
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

// asyncHasher hashes chunks on its own goroutine, so hashing overlaps
// reading and writing (sha256 is the slowest stage of an import on most
// CPUs). Buffers cycle through a fixed pool: memory stays at nbuf×size.
// The owner must call wait on every path; it stops the goroutine.
type asyncHasher struct {
	h    hash.Hash
	ch   chan []byte
	free chan []byte
	done chan struct{}
}

func newAsyncHasher(h hash.Hash, nbuf, size int) *asyncHasher {
	a := &asyncHasher{h: h, ch: make(chan []byte, nbuf), free: make(chan []byte, nbuf), done: make(chan struct{})}
	for i := 0; i < nbuf; i++ {
		a.free <- make([]byte, size)
	}
	go func() {
		defer close(a.done)
		for b := range a.ch {
			a.h.Write(b)
			a.free <- b[:cap(b)]
		}
	}()
	return a
}

// buffer returns a free buffer (blocking while all are being hashed).
func (a *asyncHasher) buffer() []byte { return <-a.free }

// submit queues b for hashing; b must not be touched afterwards.
func (a *asyncHasher) submit(b []byte) { a.ch <- b }

// release gives back a buffer that was not submitted.
func (a *asyncHasher) release(b []byte) { a.free <- b[:cap(b)] }

// wait finishes hashing everything submitted and stops the goroutine.
func (a *asyncHasher) wait() {
	if a.ch != nil {
		close(a.ch)
		<-a.done
		a.ch = nil
	}
}
