package main

import (
	"context"
	"io"
)

func benchLoad(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return nil
}
