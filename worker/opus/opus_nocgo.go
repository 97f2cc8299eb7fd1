//go:build !cgo

package opus

// Encoder encodes PCM to Opus packets; in a build without cgo
// there is none, and NewEncoder returns ErrNoCgo.
type Encoder struct{}

// NewEncoder returns ErrNoCgo in a build without cgo (after checking
// bitrate, as the cgo build does).
func NewEncoder(bitrate int) (*Encoder, error) {
	if _, err := checkBitrate(bitrate); err != nil {
		return nil, err
	}
	return nil, ErrNoCgo
}

// Encode returns ErrNoCgo (after checking pcm's length, as the cgo build
// does).
func (e *Encoder) Encode(pcm []int16) ([]byte, error) {
	if err := checkPacket(pcm); err != nil {
		return nil, err
	}
	return nil, ErrNoCgo
}

// Decoder decodes Opus packets; in a build without cgo there is none, and
// NewDecoder returns ErrNoCgo.
type Decoder struct{}

// NewDecoder returns ErrNoCgo in a build without cgo.
func NewDecoder() (*Decoder, error) { return nil, ErrNoCgo }

// Decode returns ErrNoCgo.
func (d *Decoder) Decode(packet []byte) ([]int16, error) { return nil, ErrNoCgo }

// Conceal returns ErrNoCgo.
func (d *Decoder) Conceal(next []byte) ([]int16, error) { return nil, ErrNoCgo }
