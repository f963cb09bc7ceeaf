// Initiates the single-node replica set (change streams need one) and loads
// the original service's two sample orders, once.
try {
  rs.status();
} catch (e) {
  rs.initiate({ _id: "rs0", members: [{ _id: 0, host: "mongo:27017" }] });
}
while (!db.hello().isWritablePrimary) {
  sleep(200);
}
const orders = db.getSiblingDB("inventory_db").orders;
if (orders.countDocuments({}) === 0) {
  orders.insertMany([
    { vendedor: "S-01", producto: "Tornillos M6", cantidad: 100 },
    { vendedor: "S-01", producto: "Tuercas M6", cantidad: 80 },
  ]);
}
