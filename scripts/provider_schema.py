#!/usr/bin/env python3
"""Writes the argument schema of Terraform providers, read from their
published jsii assemblies, as compact JSON for tests/terraform_schema.rs.

Usage: provider_schema.py OUTPUT WHEEL [WHEEL ...]

Each wheel is a prebuilt CDK Terrain provider package (cdktn-provider-aws,
cdktn-provider-random). Its jsii assembly describes every resource and data
source: the class's docs name the Terraform type, and the configuration
interface lists each argument (its Terraform name in its registry docs link),
whether it is optional, and its type; a type that is another interface of the
assembly is a nested block, described the same way.

Output:
  {"providers": {"aws": "6.69.1", ...},
   "resources": {"aws_sqs_queue": "<schema id>", ...},
   "data_sources": {"aws_iam_policy_document": "<schema id>", ...},
   "schemas": {"<schema id>": {"arguments": {"name": true|false (required)},
                               "blocks": {"name": {"required": bool, "schema": "<schema id>"}}}}}
A block whose schema is null is one the bindings type as `any` (too deep to
describe, such as WAF rule statements): its contents are not checked.
Standard library only.
"""

import gzip
import io
import json
import re
import sys
import tarfile
import zipfile

LINK = re.compile(r"\{@link https://registry\.terraform\.io/providers/hashicorp/(\w+)/([\w.]+)/docs/"
                  r"(resources|data-sources)/(\w+)(?:#(\w+))? ([\w.]+)\}")


def assembly_of(wheel_path):
    """The parsed .jsii of a provider wheel (following a gzip redirect)."""
    with zipfile.ZipFile(wheel_path) as wheel:
        name = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
        with tarfile.open(fileobj=io.BytesIO(wheel.read(name)), mode="r:gz") as tar:
            assembly = json.load(tar.extractfile("package/.jsii"))
            if assembly.get("schema") == "jsii/file-redirect":
                data = tar.extractfile("package/" + assembly["filename"]).read()
                if assembly.get("compression") == "gzip":
                    data = gzip.decompress(data)
                assembly = json.loads(data)
    return assembly


def link_of(docs):
    for part in ("summary", "remarks"):
        match = LINK.search((docs or {}).get(part, ""))
        if match:
            return match
    return None


def snake(camel):
    return re.sub(r"(?<!^)(?=[A-Z])", "_", camel).lower()


def struct_refs(type_ref, types):
    """The provider interfaces a property's type refers to (blocks)."""
    if "fqn" in type_ref:
        target = types.get(type_ref["fqn"])
        if target and target.get("kind") == "interface" and target.get("datatype"):
            return [type_ref["fqn"]]
        return []
    if "collection" in type_ref:
        return struct_refs(type_ref["collection"]["elementtype"], types)
    if "union" in type_ref:
        return [fqn for member in type_ref["union"]["types"] for fqn in struct_refs(member, types)]
    return []


def describe(fqn, types, schemas):
    """Adds the schema of interface `fqn` (and its blocks) to `schemas`."""
    if fqn in schemas:
        return
    schema = {"arguments": {}, "blocks": {}}
    schemas[fqn] = schema
    interface = types[fqn]
    properties = list(interface.get("properties", []))
    # Interfaces of the same assembly that this one extends (never the meta-arguments).
    for parent in interface.get("interfaces", []):
        if parent in types:
            properties += types[parent].get("properties", [])
    for prop in properties:
        link = link_of(prop.get("docs"))
        name = link.group(5) if link and link.group(5) else snake(prop["name"])
        required = not prop.get("optional", False)
        refs = struct_refs(prop["type"], types)
        if prop["type"].get("primitive") == "any":
            # Too deep for the bindings to describe (WAF statements): a block
            # or an argument whose contents are not checked.
            schema["blocks"][name] = {"required": required, "schema": None}
        elif refs:
            schema["blocks"][name] = {"required": required, "schema": refs[0]}
            describe(refs[0], types, schemas)
        else:
            schema["arguments"][name] = required


def main(output, wheels):
    result = {"providers": {}, "resources": {}, "data_sources": {}, "schemas": {}}
    for wheel in wheels:
        types = assembly_of(wheel)["types"]
        for fqn, cls in types.items():
            base = cls.get("base")
            if cls.get("kind") != "class" or base not in ("cdktn.TerraformResource", "cdktn.TerraformDataSource"):
                continue
            link = link_of(cls.get("docs"))
            if not link:
                continue
            provider, version, kind, _, _, tf_type = link.groups()
            result["providers"][provider] = version
            params = cls.get("initializer", {}).get("parameters", [])
            config = next((p["type"]["fqn"] for p in params if p["name"] == "config"), None)
            if config is None:
                continue
            describe(config, types, result["schemas"])
            table = "resources" if kind == "resources" else "data_sources"
            result[table][tf_type] = config
    if not result["resources"]:
        sys.exit("no resources found in " + ", ".join(wheels))
    with open(output, "w") as out:
        json.dump(result, out, separators=(",", ":"), sort_keys=True)
    print(f"{output}: {len(result['resources'])} resources, {len(result['data_sources'])} data sources "
          f"of {', '.join(f'{p} {v}' for p, v in sorted(result['providers'].items()))}")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:])
