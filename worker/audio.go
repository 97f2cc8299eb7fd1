package worker

import (
	"encoding/binary"
	"errors"
	"math"
)

// SampleRate is the rate of every PCM buffer inside the worker and on the
// wire: 16 kHz, mono, signed 16-bit little-endian.
const SampleRate = 16000

// FrameSamples is the length of one published audio frame: 20 ms.
const FrameSamples = SampleRate / 50

// errWAV reports a WAV file the worker cannot read.
var errWAV = errors.New("not a 16-bit PCM WAV file")

// DecodeWAV reads a RIFF WAV file of 16-bit PCM and returns its first
// channel and its sample rate. A data chunk whose declared size runs past
// the end (as programs writing to a pipe leave it) is read to the end.
func DecodeWAV(b []byte) (samples []int16, rate int, err error) {
	if len(b) < 12 || string(b[0:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		return nil, 0, errWAV
	}
	channels := 0
	for p := 12; p+8 <= len(b); {
		id, size := string(b[p:p+4]), int(binary.LittleEndian.Uint32(b[p+4:p+8]))
		p += 8
		switch id {
		case "fmt ":
			if size < 16 || p+16 > len(b) {
				return nil, 0, errWAV
			}
			format := binary.LittleEndian.Uint16(b[p:])
			channels = int(binary.LittleEndian.Uint16(b[p+2:]))
			rate = int(binary.LittleEndian.Uint32(b[p+4:]))
			bits := binary.LittleEndian.Uint16(b[p+14:])
			// Rates outside what speech engines use are refused: resampling
			// a 1 Hz "speech" to 16 kHz would allocate 16,000 samples per one.
			if (format != 1 && format != 0xFFFE) || bits != 16 || channels < 1 || rate < 8000 || rate > 192000 {
				return nil, 0, errWAV
			}
		case "data":
			if channels == 0 {
				return nil, 0, errWAV
			}
			end := p + size
			if size < 0 || end > len(b) || end < p {
				end = len(b)
			}
			data := b[p:end]
			n := len(data) / (2 * channels)
			samples = make([]int16, n)
			for i := range samples {
				samples[i] = int16(binary.LittleEndian.Uint16(data[i*2*channels:]))
			}
			return samples, rate, nil
		}
		if size < 0 || size > len(b) {
			break
		}
		p += size + size&1
	}
	return nil, 0, errWAV
}

// EncodeWAV returns samples as a mono 16-bit PCM WAV file.
func EncodeWAV(samples []int16, rate int) []byte {
	b := make([]byte, 44+2*len(samples))
	copy(b[0:], "RIFF")
	binary.LittleEndian.PutUint32(b[4:], uint32(36+2*len(samples)))
	copy(b[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(b[16:], 16)
	binary.LittleEndian.PutUint16(b[20:], 1) // PCM
	binary.LittleEndian.PutUint16(b[22:], 1) // mono
	binary.LittleEndian.PutUint32(b[24:], uint32(rate))
	binary.LittleEndian.PutUint32(b[28:], uint32(rate*2))
	binary.LittleEndian.PutUint16(b[32:], 2)
	binary.LittleEndian.PutUint16(b[34:], 16)
	copy(b[36:], "data")
	binary.LittleEndian.PutUint32(b[40:], uint32(2*len(samples)))
	PutPCM(b[44:], samples)
	return b
}

// PCM returns little-endian 16-bit bytes as samples.
func PCM(b []byte) []int16 {
	s := make([]int16, len(b)/2)
	for i := range s {
		s[i] = int16(binary.LittleEndian.Uint16(b[2*i:]))
	}
	return s
}

// PutPCM writes samples into b as little-endian 16-bit bytes; b must hold
// 2*len(samples) bytes.
func PutPCM(b []byte, samples []int16) {
	for i, v := range samples {
		binary.LittleEndian.PutUint16(b[2*i:], uint16(v))
	}
}

// RMS returns the root mean square of samples, on the int16 scale.
func RMS(samples []int16) float64 {
	if len(samples) == 0 {
		return 0
	}
	var sum float64
	for _, v := range samples {
		f := float64(v)
		sum += f * f
	}
	return math.Sqrt(sum / float64(len(samples)))
}

// resampleTaps is the half-width of the resampling filter, in samples of
// the lower of the two rates.
const resampleTaps = 16

// Resample converts samples from one rate to another with a windowed-sinc
// low-pass filter (Blackman window, cut-off at 95% of the lower Nyquist
// frequency): for each output sample, the input around its position is
// weighted by the filter, so nothing above the new Nyquist frequency folds
// back as aliasing when going down (espeak-ng's 22050 Hz to 16 kHz), and
// no images appear when going up. The weights of each output sample are
// normalised so that a constant signal stays constant.
func Resample(in []int16, from, to int) []int16 {
	if from == to || len(in) == 0 {
		return append([]int16(nil), in...)
	}
	ratio := float64(from) / float64(to)
	// fc is the cut-off in cycles per input sample.
	fc := 0.5 * 0.95 * math.Min(1, 1/ratio)
	half := float64(resampleTaps) * math.Max(1, ratio) // in input samples
	n := int(float64(len(in)) / ratio)
	out := make([]int16, n)
	for i := range out {
		t := float64(i) * ratio
		lo, hi := int(math.Ceil(t-half)), int(math.Floor(t+half))
		var acc, wsum float64
		for k := max(lo, 0); k <= hi && k < len(in); k++ {
			x := float64(k) - t
			w := 2 * fc * sinc(2*fc*x) * blackman(x/half)
			acc += w * float64(in[k])
			wsum += w
		}
		if wsum != 0 {
			acc /= wsum
		}
		out[i] = clamp16(acc)
	}
	return out
}

func sinc(x float64) float64 {
	if x == 0 {
		return 1
	}
	return math.Sin(math.Pi*x) / (math.Pi * x)
}

// blackman is the Blackman window over [-1, 1].
func blackman(x float64) float64 {
	if x <= -1 || x >= 1 {
		return 0
	}
	p := math.Pi * (x + 1) // 0..2π
	return 0.42 - 0.5*math.Cos(p) + 0.08*math.Cos(2*p)
}

func clamp16(v float64) int16 {
	v = math.Round(v)
	switch {
	case v > math.MaxInt16:
		return math.MaxInt16
	case v < math.MinInt16:
		return math.MinInt16
	}
	return int16(v)
}
