package datadog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/textproto"
	"time"
)

// AttachmentName is the file name of the pprof CPU profile in an upload.
const AttachmentName = "cpu.pprof"

// uploadEvent is the "event" part of an upload (intake format version 4).
type uploadEvent struct {
	Attachments []string `json:"attachments"`
	Tags        string   `json:"tags_profiler"`
	Start       string   `json:"start"`
	End         string   `json:"end"`
	Family      string   `json:"family"`
	Version     string   `json:"version"`
}

type attachment struct {
	name string
	data []byte
}

// encode returns the multipart body of one upload and its content type: an
// "event" part (filename event.json, application/json), then one part per
// attachment, named by its file name (application/octet-stream).
func encode(start, end time.Time, family, tags string, atts []attachment) (body []byte, contentType string, err error) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	ev := uploadEvent{
		Tags:    tags,
		Start:   start.UTC().Format(time.RFC3339Nano),
		End:     end.UTC().Format(time.RFC3339Nano),
		Family:  family,
		Version: "4",
	}
	for _, a := range atts {
		ev.Attachments = append(ev.Attachments, a.name)
		w, err := mw.CreateFormFile(a.name, a.name)
		if err != nil {
			return nil, "", fmt.Errorf("write attachment %s: %w", a.name, err)
		}
		if _, err := w.Write(a.data); err != nil {
			return nil, "", fmt.Errorf("write attachment %s: %w", a.name, err)
		}
	}
	w, err := mw.CreatePart(textproto.MIMEHeader{
		"Content-Disposition": {`form-data; name="event"; filename="event.json"`},
		"Content-Type":        {"application/json"},
	})
	if err != nil {
		return nil, "", fmt.Errorf("write event part: %w", err)
	}
	if err := json.NewEncoder(w).Encode(ev); err != nil {
		return nil, "", fmt.Errorf("write event part: %w", err)
	}
	if err := mw.Close(); err != nil {
		return nil, "", fmt.Errorf("close multipart: %w", err)
	}
	return buf.Bytes(), mw.FormDataContentType(), nil
}
