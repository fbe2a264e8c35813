"""The Azure ML target (hub-based projects): serverless fine-tuning and command jobs on a cluster.

``steps`` (what ``plan`` prints and ``submit`` runs: hub, project, data, model or cluster, job), ``checks``
(prerequisites: providers, region, quota, registry), ``endpoints`` (deploy, invoke, chat, delete of serverless
endpoints), ``remote_adapter`` (an ``azureml-compute`` job's adapter, downloaded) are the services; ``sdk/`` is
the adapter, the only code that imports ``azure.*`` (lazily).
"""
