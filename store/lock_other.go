//go:build !unix

package store

func checkDataDirFree(string) error { return nil }
