// Package scheduler will run apimeter's background jobs with gocron:
// health checks, alert checks, rollup verification and repair, quota
// period rollover and data cleanup, once per tick across replicas.
package scheduler
