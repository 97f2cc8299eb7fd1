package web

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

// asset is one file served from memory with a strong ETag, so that
// browsers revalidate cheaply (304) instead of downloading again.
type asset struct {
	name        string
	data        []byte
	etag        string
	contentType string
}

func newAsset(name string, data []byte) *asset {
	sum := sha256.Sum256(data)
	ct := mime.TypeByExtension(path.Ext(name))
	switch path.Ext(name) {
	case ".js":
		// Some systems' MIME tables lack .js or map it oddly; browsers
		// refuse modules served with the wrong type.
		ct = "text/javascript; charset=utf-8"
	case ".html":
		ct = "text/html; charset=utf-8"
	case ".svg":
		ct = "image/svg+xml"
	}
	if ct == "" {
		ct = "application/octet-stream"
	}
	return &asset{
		name:        name,
		data:        data,
		etag:        `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`,
		contentType: ct,
	}
}

// serve writes the asset. The files have no version in their names (there
// is no build step), so browsers must revalidate each time; the ETag makes
// that a 304 without a body.
func (a *asset) serve(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", a.contentType)
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", a.etag)
	// ServeContent answers If-None-Match with 304 and handles HEAD and ranges.
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.data))
}

// loadStatic reads every embedded file under static/ into memory.
func loadStatic() (map[string]*asset, error) {
	out := map[string]*asset{}
	fsys := staticFS()
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if strings.HasPrefix(path.Base(p), ".") {
			return nil
		}
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		out[p] = newAsset(p, data)
		return nil
	})
	return out, err
}
