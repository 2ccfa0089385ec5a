package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/apimeter/apimeter/ingest/producer"
)

// Error is an API error: its JSON body is
// {"error":{"code":"…","message":"…"}}.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	// Details lists per-item problems (the records of a batch), if any.
	Details any `json:"details,omitempty"`
	// RetryAfter, when set, is sent as the Retry-After header.
	RetryAfter time.Duration `json:"-"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// StatusCode is the HTTP status, for middleware that records it.
func (e *Error) StatusCode() int { return e.Status }

// Errorf builds an Error.
func Errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// BadRequest is a 400 invalid_argument error.
func BadRequest(format string, args ...any) *Error {
	return Errorf(http.StatusBadRequest, "invalid_argument", format, args...)
}

var statusCodes = map[int]string{
	http.StatusBadRequest:            "invalid_argument",
	http.StatusUnauthorized:          "unauthenticated",
	http.StatusRequestTimeout:        "request_timeout",
	http.StatusForbidden:             "permission_denied",
	http.StatusNotFound:              "not_found",
	http.StatusMethodNotAllowed:      "method_not_allowed",
	http.StatusConflict:              "conflict",
	http.StatusRequestEntityTooLarge: "payload_too_large",
	http.StatusUnsupportedMediaType:  "unsupported_media_type",
	http.StatusTooManyRequests:       "rate_limited",
	http.StatusServiceUnavailable:    "unavailable",
}

// handleError writes every error as the JSON error body. Faults that are
// not an *Error or a 4xx from echo are logged and answered with a generic
// 500, without internals.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	var apiErr *Error
	var httpErr *echo.HTTPError
	switch {
	case errors.As(err, &apiErr):
	case errors.Is(c.Request().Context().Err(), context.Canceled):
		// The client left: whatever the handler returned (a cancelled
		// query, an engine error) is the client's doing, not a fault.
		apiErr = &Error{Status: producer.StatusClientClosedRequest, Code: "client_closed_request", Message: "the client closed the connection"}
	case errors.As(err, &httpErr) && httpErr.Code < 500:
		code, ok := statusCodes[httpErr.Code]
		if !ok {
			code = "invalid_argument"
		}
		apiErr = &Error{Status: httpErr.Code, Code: code, Message: fmt.Sprint(httpErr.Message)}
	default:
		s.log.Error("request failed", "route", c.Path(), "method", c.Request().Method, "err", err)
		apiErr = &Error{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error"}
		if errors.As(err, &httpErr) && httpErr.Code == http.StatusServiceUnavailable {
			apiErr = &Error{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: fmt.Sprint(httpErr.Message)}
		}
	}
	if apiErr.RetryAfter > 0 {
		c.Response().Header().Set("Retry-After", retryAfterSeconds(apiErr.RetryAfter))
	}
	body := map[string]*Error{"error": apiErr}
	if c.Request().Method == http.MethodHead {
		err = c.NoContent(apiErr.Status)
	} else {
		err = c.JSON(apiErr.Status, body)
	}
	if err != nil {
		s.log.Error("write error response", "err", err)
	}
}

// retryAfterSeconds is a Retry-After value: whole seconds, rounded up.
func retryAfterSeconds(d time.Duration) string {
	return strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10)
}
