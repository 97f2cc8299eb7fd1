package inmem

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync"
	"time"

	"github.com/pentecost/pentecost"
)

// Broker defaults: about ten seconds of 20 ms audio, the original system's
// per-listener bound, is what a reconnecting listener can recover.
const (
	DefaultHistorySize = 500
	DefaultHistoryTTL  = 10 * time.Second
)

// Broker numbers, keeps and delivers the frames of one node's streams.
type Broker struct {
	// HistorySize is the most frames kept per stream; HistoryTTL the
	// oldest age kept. Set before first use.
	HistorySize int
	HistoryTTL  time.Duration
	Now         func() time.Time

	mu      sync.Mutex
	streams map[pentecost.StreamKey]*brokerStream
}

type brokerStream struct {
	// pubMu orders Publish calls so that handlers see frames in Seq order;
	// mu guards the fields below and is never held while handlers run, so
	// a handler may call History without deadlock.
	pubMu sync.Mutex

	mu    sync.Mutex
	epoch string
	last  uint64
	ring  []*pentecost.Frame // ring buffer of the newest frames
	head  int                // index of the oldest frame in ring
	n     int                // frames in ring
	subs  []*brokerSub       // copied on change; Publish iterates a snapshot
}

type brokerSub struct{ h pentecost.FrameHandler }

// NewBroker returns a broker with default history bounds.
func NewBroker() *Broker {
	return &Broker{
		HistorySize: DefaultHistorySize,
		HistoryTTL:  DefaultHistoryTTL,
		Now:         time.Now,
		streams:     make(map[pentecost.StreamKey]*brokerStream),
	}
}

func newEpoch() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (b *Broker) stream(key pentecost.StreamKey) *brokerStream {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.streams[key]
	if s == nil {
		size := b.HistorySize
		if size <= 0 {
			size = 1
		}
		s = &brokerStream{epoch: newEpoch(), ring: make([]*pentecost.Frame, 0, min(size, 64))}
		b.streams[key] = s
	}
	return s
}

// Publish implements pentecost.Broker.
func (b *Broker) Publish(ctx context.Context, key pentecost.StreamKey, f *pentecost.Frame) error {
	if f == nil || key.SessionID == "" {
		return pentecost.Errorf(pentecost.EVALIDATIONFIELD, "A frame and a session are required.")
	}
	s := b.stream(key)
	s.pubMu.Lock()
	defer s.pubMu.Unlock()

	s.mu.Lock()
	s.last++
	f.Seq, f.Epoch = s.last, s.epoch
	if f.Time.IsZero() {
		f.Time = b.Now()
	}
	if f.Language == "" {
		f.Language = key.Language
	}
	s.push(f, b.HistorySize)
	subs := s.subs
	s.mu.Unlock()

	for _, sub := range subs {
		sub.h(f)
	}
	return nil
}

// push appends f to the ring, overwriting the oldest frame when full. The
// ring grows on demand so that quiet streams stay small.
func (s *brokerStream) push(f *pentecost.Frame, size int) {
	if size <= 0 {
		size = 1
	}
	if s.n < size {
		if s.n == len(s.ring) && s.head == 0 {
			s.ring = append(s.ring, f)
			s.n++
			return
		}
		// The ring has wrapped before reaching size (size shrank); keep it simple.
		if s.n < len(s.ring) {
			s.ring[(s.head+s.n)%len(s.ring)] = f
			s.n++
			return
		}
	}
	s.ring[s.head] = f
	s.head = (s.head + 1) % len(s.ring)
}

// Subscribe implements pentecost.Broker.
func (b *Broker) Subscribe(ctx context.Context, key pentecost.StreamKey, h pentecost.FrameHandler) (func(), error) {
	s := b.stream(key)
	sub := &brokerSub{h: h}
	s.mu.Lock()
	s.subs = append(append([]*brokerSub(nil), s.subs...), sub)
	s.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			subs := make([]*brokerSub, 0, len(s.subs))
			for _, x := range s.subs {
				if x != sub {
					subs = append(subs, x)
				}
			}
			s.subs = subs
		})
	}, nil
}

// History implements pentecost.Broker.
func (b *Broker) History(ctx context.Context, key pentecost.StreamKey, since uint64) ([]*pentecost.Frame, pentecost.StreamPosition, error) {
	s := b.stream(key)
	cutoff := b.Now().Add(-b.HistoryTTL)
	s.mu.Lock()
	defer s.mu.Unlock()
	pos := pentecost.StreamPosition{Epoch: s.epoch, Last: s.last}
	var out []*pentecost.Frame
	for i := 0; i < s.n; i++ {
		f := s.ring[(s.head+i)%len(s.ring)]
		if b.HistoryTTL > 0 && f.Time.Before(cutoff) {
			continue
		}
		if pos.First == 0 {
			pos.First = f.Seq
		}
		if f.Seq > since {
			out = append(out, f)
		}
	}
	return out, pos, nil
}

// Position implements pentecost.Broker.
func (b *Broker) Position(ctx context.Context, key pentecost.StreamKey) (pentecost.StreamPosition, error) {
	_, pos, err := b.History(ctx, key, ^uint64(0))
	return pos, err
}

// DropSession implements pentecost.Broker.
func (b *Broker) DropSession(ctx context.Context, sessionID string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for k, s := range b.streams {
		if k.SessionID != sessionID {
			continue
		}
		s.mu.Lock()
		keep := len(s.subs) > 0
		s.ring, s.head, s.n = nil, 0, 0
		s.mu.Unlock()
		if !keep {
			delete(b.streams, k)
		}
	}
	return nil
}

var _ pentecost.Broker = (*Broker)(nil)
