package fleet

import "sync"

// queue holds events for publishing: a bounded ring in RAM that keeps
// filling while the device is offline, dropping the oldest event (and
// counting it) when full. Nothing goes to flash.
type queue struct {
	mu      sync.Mutex
	buf     []Event
	head, n int
	dropped uint64
	wake    chan struct{} // 1-buffered: something was pushed
}

func newQueue(size int) *queue {
	if size < 1 {
		size = 1
	}
	return &queue{buf: make([]Event, size), wake: make(chan struct{}, 1)}
}

func (q *queue) push(e Event) {
	q.mu.Lock()
	if q.n == len(q.buf) {
		q.head = (q.head + 1) % len(q.buf)
		q.n--
		q.dropped++
	}
	q.buf[(q.head+q.n)%len(q.buf)] = e
	q.n++
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// peek returns the oldest event without removing it.
func (q *queue) peek() (Event, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n == 0 {
		return Event{}, false
	}
	return q.buf[q.head], true
}

// pop removes the oldest event if it is still the one with seq (it may
// have been dropped meanwhile).
func (q *queue) pop(seq uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n > 0 && q.buf[q.head].Seq == seq {
		q.buf[q.head] = Event{}
		q.head = (q.head + 1) % len(q.buf)
		q.n--
	}
}

func (q *queue) stats() (n int, dropped uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n, q.dropped
}
