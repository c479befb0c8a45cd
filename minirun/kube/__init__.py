"""`minirun kube play FILE` / `kube down FILE`: Kubernetes objects on this machine,
for learning (Pod, Deployment, Service ClusterIP/NodePort, ConfigMap, Secret).

Modules (see docs/kube.md):
  objects     YAML -> checked objects (pure); podspec: the PodSpec part
  adapter     the one mapping to the front end (RunOptions) and its few calls
  pods        a pod: infra container + containers joining its netns, volumes
  services    Services as nftables DNAT rules (numgen random over pod IPs)
  state       what was made, on disk under a lock
  api         play / down / get, and reconcile
  controller  the process that replaces dead pods and runs liveness probes
"""
