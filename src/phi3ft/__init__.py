"""phi3ft: fine-tune, deploy, smoke-test and clean up Phi models in Azure AI Foundry."""

__version__ = "0.1.0"
