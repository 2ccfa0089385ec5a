package api

import (
	"errors"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/labstack/echo/v4"
)

// Deadlines bound how long a client may take to send a request and to
// read the answer, so that slow or stalled connections cannot pile up
// (each holds a goroutine and a file descriptor). The body and write
// limits are rates past a grace period rather than totals: a large
// download over a slow link is healthy and finishes; a client that
// trickles a byte every few seconds, or stops reading, is cut.
type Deadlines struct {
	// Header bounds reading a request's line and headers. Default 10 s.
	Header time.Duration
	// BodyGrace is how long a request body may take before the rate
	// applies. Default 10 s.
	BodyGrace time.Duration
	// BodyRate is the slowest accepted body, in bytes per second after
	// BodyGrace: a body of n bytes must have arrived BodyGrace + n/BodyRate
	// after the request began. Slower bodies are answered 408 and the
	// connection is closed. Default 16 KiB/s.
	BodyRate int
	// WriteGrace is how long each write of the answer may take before the
	// rate applies. Default 30 s.
	WriteGrace time.Duration
	// WriteRate is the slowest accepted reader, in bytes per second: a
	// write of n bytes must complete within WriteGrace + n/WriteRate, or
	// the connection is closed. Default 2 KiB/s — a download at 10 KB/s
	// is well within it.
	WriteRate int
	// Idle bounds a kept-alive connection's wait for its next request.
	// Default 2 min.
	Idle time.Duration
}

func (d *Deadlines) setDefaults() {
	if d.Header <= 0 {
		d.Header = 10 * time.Second
	}
	if d.BodyGrace <= 0 {
		d.BodyGrace = 10 * time.Second
	}
	if d.BodyRate <= 0 {
		d.BodyRate = 16 << 10
	}
	if d.WriteGrace <= 0 {
		d.WriteGrace = 30 * time.Second
	}
	if d.WriteRate <= 0 {
		d.WriteRate = 2 << 10
	}
	if d.Idle <= 0 {
		d.Idle = 2 * time.Minute
	}
}

// errBodyTimeout is a request body that came slower than Deadlines allow.
var errBodyTimeout = errors.New("the request body arrives too slowly")

// deadlines is the first middleware: it sets the connection's write
// deadline before every write of the answer and a read deadline that
// moves with the body's progress. (net/http's own ReadTimeout and
// WriteTimeout are totals, which would cut long downloads; and a read
// deadline left on the connection after the body would cancel the
// request when the server's background read hits it, so it is cleared
// once the body is read.)
func (s *Server) deadlines(next echo.HandlerFunc) echo.HandlerFunc {
	d := s.cfg.Deadlines
	return func(c echo.Context) error {
		res := c.Response()
		rc := http.NewResponseController(res.Writer)
		// A fresh deadline now: the connection may carry an expired one
		// from an earlier request, and the final flush happens after the
		// handler's last write.
		_ = rc.SetWriteDeadline(time.Now().Add(d.WriteGrace))
		res.Writer = &deadlineWriter{ResponseWriter: res.Writer, rc: rc, d: d}
		if r := c.Request(); r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
			start := time.Now()
			if rc.SetReadDeadline(start.Add(d.BodyGrace)) == nil {
				r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc, d: d, start: start, length: r.ContentLength}
			}
		}
		return next(c)
	}
}

// deadlineWriter moves the write deadline before each write.
type deadlineWriter struct {
	http.ResponseWriter
	rc *http.ResponseController
	d  Deadlines
}

func (w *deadlineWriter) Write(p []byte) (int, error) {
	_ = w.rc.SetWriteDeadline(time.Now().Add(w.d.WriteGrace + time.Duration(len(p))*time.Second/time.Duration(w.d.WriteRate)))
	return w.ResponseWriter.Write(p)
}

func (w *deadlineWriter) Flush() { _ = w.rc.Flush() }

// Unwrap lets http.ResponseController reach the connection.
func (w *deadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// deadlineBody moves the read deadline as the body arrives and clears it
// at the end.
type deadlineBody struct {
	io.ReadCloser
	rc     *http.ResponseController
	d      Deadlines
	start  time.Time
	length int64 // -1 when unknown (chunked)
	n      int64
	done   bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	switch {
	case b.done:
	case err == io.EOF || b.length > 0 && b.n >= b.length:
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	case n > 0:
		_ = b.rc.SetReadDeadline(b.start.Add(b.d.BodyGrace + time.Duration(b.n)*time.Second/time.Duration(b.d.BodyRate)))
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		err = errBodyTimeout
	}
	return n, err
}
