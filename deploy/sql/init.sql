-- Sample schema and data of the original service (employee S-01).
CREATE TABLE IF NOT EXISTS public.empleados (
    codigo text PRIMARY KEY,
    nombre text,
    rol    text,
    activo boolean
);
INSERT INTO public.empleados (codigo, nombre, rol, activo)
VALUES ('S-01', 'Sofía Ramírez', 'operario', true)
ON CONFLICT (codigo) DO NOTHING;
