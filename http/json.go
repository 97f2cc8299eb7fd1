package http

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"os"
	"reflect"
	"strings"

	"github.com/pentecost/pentecost"
)

// decodeJSON reads the request body into v. The body must be one JSON value
// of type application/json (or a +json type), with no unknown fields and
// nothing after it. Every problem is VALIDATION_INVALID_BODY (400) except a
// field of the wrong type, VALIDATION_INVALID_FIELD (400), and a body over
// the size limit, PAYLOAD_TOO_LARGE (413), and a body that did not arrive
// before the read deadline, REQUEST_TIMEOUT (408). A wrong Content-Type is
// a 400 too, not a 415, so that clients deal with one set of codes.
func decodeJSON(r *http.Request, v any) error {
	if r.ContentLength == 0 {
		return &pentecost.Error{Code: pentecost.EVALIDATIONBODY, Message: "Request body is empty; a JSON object is required."}
	}
	if err := checkContentType(r); err != nil {
		return err
	}

	dec := json.NewDecoder(r.Body)
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return bodyError(err)
	}
	// Exactly one value: anything but white space after it is refused.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			if e := readError(err); e != nil {
				return e
			}
		}
		return &pentecost.Error{Code: pentecost.EVALIDATIONBODY, Message: "Request body has data after the JSON value."}
	}
	// An object, not null: encoding/json would take null as "no fields"
	// and the handler would report a field that was never sent.
	if len(raw) == 0 || raw[0] != '{' {
		return &pentecost.Error{Code: pentecost.EVALIDATIONBODY, Message: "Request body must be a JSON object."}
	}
	obj := json.NewDecoder(bytes.NewReader(raw))
	obj.DisallowUnknownFields()
	if err := obj.Decode(v); err != nil {
		return bodyError(err)
	}
	return nil
}

// checkContentType requires a JSON media type.
func checkContentType(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return &pentecost.Error{Code: pentecost.EVALIDATIONBODY, Message: "Content-Type must be application/json."}
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		return &pentecost.Error{
			Code:    pentecost.EVALIDATIONBODY,
			Message: "Content-Type must be application/json.",
			Details: map[string]string{"contentType": truncate(ct, 64)},
		}
	}
	return nil
}

// bodyError turns a decoding error into a client error naming what was wrong.
func bodyError(err error) error {
	if e := readError(err); e != nil {
		return e
	}
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return &pentecost.Error{Code: pentecost.EVALIDATIONBODY, Message: "Request body is empty; a JSON object is required."}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &pentecost.Error{Code: pentecost.EVALIDATIONBODY, Message: "Request body is not valid JSON: it ends too soon."}
	case errors.As(err, &syntaxErr):
		return &pentecost.Error{
			Code:    pentecost.EVALIDATIONBODY,
			Message: "Request body is not valid JSON.",
			Details: map[string]int64{"offset": syntaxErr.Offset},
		}
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return &pentecost.Error{Code: pentecost.EVALIDATIONBODY, Message: "Request body must be a JSON object."}
		}
		return &pentecost.Error{
			Code:    pentecost.EVALIDATIONFIELD,
			Message: "Field " + typeErr.Field + " has the wrong type.",
			Details: map[string]string{"field": typeErr.Field, "expected": jsonKind(typeErr.Type)},
		}
	}
	// encoding/json reports unknown fields only in its message.
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		name = strings.Trim(name, `"`)
		return &pentecost.Error{
			Code:    pentecost.EVALIDATIONBODY,
			Message: "Request body has an unknown field: " + truncate(name, 64) + ".",
			Details: map[string]string{"field": truncate(name, 64)},
		}
	}
	return &pentecost.Error{Code: pentecost.EVALIDATIONBODY, Message: "Request body could not be read."}
}

// readError returns PAYLOAD_TOO_LARGE when err comes from the body limit
// and REQUEST_TIMEOUT when it comes from the read deadline; nil otherwise.
func readError(err error) error {
	var maxErr *http.MaxBytesError
	if errors.As(err, &maxErr) {
		return &pentecost.Error{
			Code:    pentecost.EPAYLOADTOOLARGE,
			Message: "Request body is too large.",
			Details: map[string]int64{"maxBytes": maxErr.Limit},
		}
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return &pentecost.Error{Code: pentecost.ETIMEOUT, Message: "Request body did not arrive in time."}
	}
	return nil
}

// jsonKind names a Go type as the JSON type a client should have sent.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	default:
		return "object"
	}
}
