# Planner:AI
Calls nest three deep: Main → Prepare → Measure → a tool. A crash deep inside resumes with Main's variables.

```python
@playbook
async def Weigh(item: str) -> int:
    """A tool: may do I/O, so it is journaled."""
    return len(item) * 3
```

## Main

```python
items = ["apples", "pears", "plums"]
prepared = await Prepare(items)
await Say("user", f"Prepared {len(prepared)} items, total weight {sum(prepared.values())}")
```

## Prepare($items: list) -> dict

```python
weights = {}
for item in items:
    weights[item] = await Measure(item)
await Return(weights)
```

## Measure($item: str) -> int

```python
await Step("Measure:01:ACT")
weight = await Weigh(item)
await Say("user", f"{item}: {weight}")
await Return(weight)
```
