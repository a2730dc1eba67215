# MyAgent:AI
Processes a batch of orders: the program from the user's guide, with its tools defined.
Set ORDERS_CRASH_AT=3 to make the third order crash the process; then `playbooks run orders.pb --resume`.

```python
import os

ORDERS = [{"id": 101, "amount": 25.0}, {"id": 102, "amount": 40.0}, {"id": 103, "amount": 12.5},
          {"id": 104, "amount": 99.0}]


@playbook
async def FetchOrders() -> list:
    """The orders waiting to be processed."""
    return ORDERS


@playbook
async def ProcessOrder(order: dict) -> dict:
    """Charge one order. Pass the idempotency key to the payment system so a retry cannot charge twice."""
    crash_at = os.environ.get("ORDERS_CRASH_AT")
    if crash_at and order["id"] == 100 + int(crash_at):
        os._exit(137)  # a hard crash: no cleanup, no flush, like a power cut
    return {"id": order["id"], "charged": order["amount"], "key": agent.idempotency_key}


@playbook
async def SaveBatch(results: list) -> dict:
    return {"orders": len(results), "total": sum(r["charged"] for r in results)}


@playbook
async def GenerateSummary(batch: dict) -> str:
    return f"Summary: {batch['orders']} orders, {batch['total']:.2f} charged"
```

## ProcessOrders

```python
await Step("ProcessOrders:01:QUE")
await Say("user", "Starting order processing...")

await Step("ProcessOrders:02:ACT")
orders = await FetchOrders()

await Step("ProcessOrders:03:ACT")
results = []
for order in orders:
    result = await ProcessOrder(order)
    results.append(result)
    await Say("user", f"Order {order['id']} charged {result['charged']:.2f}")

batch_result = await SaveBatch(results)

await Step("ProcessOrders:04:ACT")
summary = await GenerateSummary(batch_result)

await Say("user", f"Complete! {summary}")
await Return(summary)
```
