"""Stages of a multi-stage Dockerfile and which of them a target needs."""
from minirun.build.dockerfile import DockerfileError
from minirun.errors import MinirunError


class Stage:
    def __init__(self, index, from_inst, name, instructions):
        self.index = index
        self.from_inst = from_inst
        self.name = name              # lower case, or None
        self.instructions = instructions
        self.base = from_inst.rest.split()[0]

    def deps(self, by_name):
        """Indexes of earlier stages this one uses (FROM stage, COPY --from)."""
        out = set()
        refs = [self.base] + [v for i in self.instructions if i.cmd in ("COPY", "ADD")
                              for v in i.flags.get("from", [])]
        for ref in refs:
            hit = by_name.get(ref.lower())
            if hit is None and ref.isdigit() and int(ref) < self.index:
                hit = int(ref)
            if hit is not None and hit < self.index:
                out.add(hit)
        return out


def split(dockerfile):
    """(meta ARG instructions before the first FROM, [Stage])."""
    meta, stages = [], []
    for inst in dockerfile.instructions:
        if inst.cmd == "FROM":
            words = inst.rest.split()
            name = words[2].lower() if len(words) == 3 else None
            if name and any(s.name == name for s in stages):
                raise DockerfileError(inst.line, f"duplicate stage name {name!r}")
            stages.append(Stage(len(stages), inst, name, []))
        elif not stages:
            if inst.cmd != "ARG":
                raise DockerfileError(inst.line, "no build stage in current context")
            meta.append(inst)
        else:
            stages[-1].instructions.append(inst)
    return meta, stages


def needed(stages, target=None):
    """The target stage and the indexes of every stage it needs, in order."""
    by_name = {s.name: s.index for s in stages if s.name}
    if target:
        if target.lower() not in by_name:
            raise MinirunError(f"target stage {target} could not be found")
        goal = by_name[target.lower()]
    else:
        goal = len(stages) - 1
    want, todo = set(), [goal]
    while todo:
        n = todo.pop()
        if n in want:
            continue
        want.add(n)
        todo.extend(stages[n].deps(by_name))
    return goal, sorted(want)
