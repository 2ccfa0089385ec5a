package chdb

import (
	"fmt"
	"os"
	"testing"
)

func TestX(t *testing.T) {
	l, _ := Load("")
	os.RemoveAll("/tmp/exp/x")
	c, _ := l.Connect("/tmp/exp/x")
	q := func(s string) {
		r, err := c.Query([]byte(s), "TSV", nil)
		if err != nil {
			fmt.Println(s, "\n  ERR", err)
			return
		}
		fmt.Printf("%s\n  -> %q\n", s, r.Data)
	}
	q("CREATE TABLE s (k UInt8, q AggregateFunction(quantilesDD(0.01, 0.5, 0.95, 0.99), UInt64)) ENGINE=AggregatingMergeTree ORDER BY k")
	q("INSERT INTO s SELECT 1, quantilesDDState(0.01, 0.5, 0.95, 0.99)(number) FROM numbers(1, 10000)")
	q("SELECT quantilesDDMerge(0.01, 0.5, 0.95, 0.99)(q) FROM s")
	q("SELECT quantilesDDMerge(0.01, 0.9)(q) FROM s")
	q("SELECT quantileDDMerge(0.01, 0.9)(q) FROM s")
	q("SELECT finalizeAggregation(q) FROM s")
	q("SELECT quantilesDD(0.01, 0, 0.5, 0.95, 0.99, 1)(number) FROM numbers(1, 101)")
	q("SELECT quantilesDD(0.01, 0.5, 0.95, 0.99)(toUInt64(0)) FROM numbers(1, 10)")
	q("SELECT quantilesDD(0.01, 0.5, 0.95, 0.99)(x) FROM (SELECT arrayJoin([0,0,0,1,1000]) x)")
	q("CREATE TABLE d (a UInt64) ENGINE=AggregatingMergeTree ORDER BY a")
	q("INSERT INTO d VALUES (1)")
	q("DELETE FROM d WHERE a = 1")
	q("SELECT count() FROM d")
}
