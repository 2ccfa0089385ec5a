package store

import (
	"errors"
	"regexp"
	"strconv"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/apimeter/apimeter/store/chdb"
)

// Error is an error the engine or server reported for a statement.
type Error struct {
	Code    int // ClickHouse error code, 0 when unknown
	Message string
}

func (e *Error) Error() string { return e.Message }

// Error codes callers branch on.
const (
	CodeUnknownTable      = 60
	CodeBadQueryParameter = 457
	CodeTableAlreadyExist = 57
	CodeQueryWasCancelled = 394
	CodeTooManyRows       = 158
)

// IsCode reports whether err is a store Error with one of codes.
func IsCode(err error, codes ...int) bool {
	var e *Error
	if !errors.As(err, &e) {
		return false
	}
	for _, c := range codes {
		if e.Code == c {
			return true
		}
	}
	return false
}

var codeRE = regexp.MustCompile(`Code: (\d+)\.`)

// engineError converts the drivers' error types into *Error.
func engineError(err error) error {
	if err == nil {
		return nil
	}
	var ce *chdb.Error
	if errors.As(err, &ce) {
		e := &Error{Message: ce.Message}
		if m := codeRE.FindStringSubmatch(ce.Message); m != nil {
			e.Code, _ = strconv.Atoi(m[1])
		}
		return e
	}
	var ex *clickhouse.Exception
	if errors.As(err, &ex) {
		return &Error{Code: int(ex.Code), Message: ex.Error()}
	}
	return err
}
