"""BatchAPI and TaskAPI at run time: the job gateway (submit, status, stop), the batch worker sidecar,
the enqueuer and the pure render functions of the Kubernetes objects a job creates.

``contract`` is the leaf module the infrastructure renders from; the rest runs in the runtime image.
"""
