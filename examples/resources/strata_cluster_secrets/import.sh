# The identity of a running kubeadm cluster, read from /etc/kubernetes/pki on a
# control-plane node over SSH (or from a local copy of that directory), for cluster "prod".
terraform import strata_cluster_secrets.prod ssh://root@10.20.0.11#prod
