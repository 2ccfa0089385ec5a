// Package manifests holds no code: its tests check the structure of the
// deployment files under deploy/compose, deploy/k8s and deploy/docker
// (references between services and objects, mounted files, roles, probes,
// and that every environment variable given to apimeter is one the README's
// configuration table documents). Nothing is started.
package manifests
