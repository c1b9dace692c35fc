"""Pipeline steps, one file each; every module here is imported by the registry, whose ``@register``
decorator makes its step a config ``type`` (see :mod:`pretrain.data.curate.registry`)."""
