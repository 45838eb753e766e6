"""An import-linter contract the project adds (pyproject.toml, ``contract_types``): no circle
in the import graph, module by module.  Import-linter's own ``acyclic_siblings`` compares
sibling packages as wholes; this one reports each set of modules that import one another,
directly or through others, with the lines that close the circle."""

from __future__ import annotations

from grimp import ImportGraph
from importlinter.application import contract_utils, output
from importlinter.application.contract_utils import AlertLevel
from importlinter.domain import fields
from importlinter.domain.contract import Contract, ContractCheck


class AcyclicModulesContract(Contract):
    type_name = "acyclic_modules"

    ignore_imports = fields.SetField(subfield=fields.ImportExpressionField(), required=False)

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        removal = contract_utils.remove_ignored_imports_and_report(
            graph=graph,
            ignore_imports=self.ignore_imports,
            unmatched_alerting=AlertLevel.ERROR,
        )
        circles = []
        for circle in _circles(graph):
            members = set(circle)
            imports = sorted(
                (importer, imported, detail["line_number"])
                for importer in circle
                for imported in graph.find_modules_directly_imported_by(importer) & members
                for detail in graph.get_import_details(importer=importer, imported=imported)
            )
            circles.append({"modules": circle, "imports": imports})
        return ContractCheck(
            kept=not circles,
            warnings=list(removal.warnings),
            metadata={"circles": circles},
        )

    def render_broken_contract(self, check: ContractCheck) -> None:
        for circle in check.metadata["circles"]:
            output.print_error(f"These modules import one another: {', '.join(circle['modules'])}")
            for importer, imported, line in circle["imports"]:
                output.print_error(f"- {importer} -> {imported} (l.{line})", bold=False)
            output.new_line()


def _circles(graph: ImportGraph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return sorted(found)
