"""Stand-in (see vllm/__init__.py): TRL 1.16 imports StructuredOutputsParams from here."""


class StructuredOutputsParams:
    def __init__(self, json=None, regex=None, choice=None, grammar=None, json_object=None,
                 disable_any_whitespace=False, disable_additional_properties=False, whitespace_pattern=None,
                 structural_tag=None):
        self.regex = regex
