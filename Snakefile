# emogrid: loss x mix x seed grid for multi-label emotion classification.
# The wiring is in rules/, the logic in src/emogrid/, the science in config/.
from snakemake.utils import min_version

# 9.17: the first release whose `priority:` takes a function (train: longest mixes first); 9.19: the
# first that reads profiles/*/profile.yaml (older ones ignore the workflow profile); 9.20: bare numbers
# for `runtime` in a profile or on the command line are minutes again (seconds in 9.16.3-9.19).
min_version("9.20")


configfile: "config/config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"


container: config["container"]


include: "rules/data.smk"
include: "rules/model.smk"
include: "rules/train.smk"
include: "rules/report.smk"


localrules:
    all,


rule all:
    default_target: True
    input:
        get_final_output(),
