package bench

import (
	_ "embed"
	"encoding/binary"
	"errors"
	"sync"
	"time"
)

// Audio formats a run can send (Config.Format).
const (
	// FormatPCM sends PCM chunks of ChunkBytes every ChunkInterval, each
	// carrying its send time: what the benchmark always did.
	FormatPCM = "pcm"
	// FormatOpus sends real Opus packets of speech, 100 ms each, every
	// 100 ms, and listeners join with codec=opus.
	FormatOpus = "opus"
)

// OpusPacketInterval is the length of the Opus fixture's packets, and so
// the interval at which a run of FormatOpus sends them.
const OpusPacketInterval = 100 * time.Millisecond

// opusSpeech is the Opus fixture: 5 s of the worker's test speech with a
// microphone's noise floor, encoded by the worker's encoder (worker/opus,
// 24 kbit/s, 100 ms packets), each packet a little-endian uint16 length
// and the packet. Opus packets leave no room for timing bytes, so a
// listener tells which packet it got by its bytes: every packet of the
// fixture differs. TestOpusFixture checks it; with -update it writes it
// again (which needs cgo, libopus and espeak-ng).
//
//go:embed opus_speech.bin
var opusSpeech []byte

// opusFixture is the fixture, split: its packets, and each packet's
// index by its bytes.
type opusFixture struct {
	packets [][]byte
	index   map[string]int
	bytes   int // all packets' bytes
}

var loadOpusFixture = sync.OnceValues(func() (*opusFixture, error) { return parseOpusFixture(opusSpeech) })

// parseOpusFixture splits a fixture of length-prefixed packets.
func parseOpusFixture(b []byte) (*opusFixture, error) {
	f := &opusFixture{index: map[string]int{}}
	for len(b) > 0 {
		if len(b) < 2 {
			return nil, errors.New("bench: Opus fixture truncated")
		}
		n := int(binary.LittleEndian.Uint16(b))
		if n == 0 || len(b) < 2+n {
			return nil, errors.New("bench: Opus fixture truncated")
		}
		p := b[2 : 2+n]
		if _, dup := f.index[string(p)]; dup {
			return nil, errors.New("bench: Opus fixture repeats a packet")
		}
		f.index[string(p)] = len(f.packets)
		f.packets = append(f.packets, p)
		f.bytes += n
		b = b[2+n:]
	}
	if len(f.packets) == 0 {
		return nil, errors.New("bench: Opus fixture is empty")
	}
	return f, nil
}

// OpusFixture returns the packets a run of FormatOpus sends, in order.
func OpusFixture() ([][]byte, error) {
	f, err := loadOpusFixture()
	if err != nil {
		return nil, err
	}
	return f.packets, nil
}
