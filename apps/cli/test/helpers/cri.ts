/**
 * A small CRI client (what the kubelet speaks to containerd): gRPC with the CRI v1 proto (runtime.v1, vendored in
 * test/fixtures/cri from containerd 1.6.20's tree), @grpc/grpc-js over containerd's unix socket. Only the calls
 * the tests make, each promisified; fields keep the proto's snake_case names.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { fileURLToPath } from 'node:url';

const FIXTURES = fileURLToPath(new URL('../fixtures/cri', import.meta.url));

type Call = (req: object, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void;

export interface CriClient {
  /** any RuntimeService method (Version, RunPodSandbox, CreateContainer, ...) with its request object */
  runtime<T = Record<string, unknown>>(method: string, req: object): Promise<T>;
  /** any ImageService method (ListImages, ImageStatus, ...) */
  image<T = Record<string, unknown>>(method: string, req: object): Promise<T>;
  close(): void;
}

export function criClient(socket: string): CriClient {
  const def = protoLoader.loadSync('api.proto', {
    includeDirs: [FIXTURES],
    keepCase: true,
    longs: Number,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    runtime: { v1: { RuntimeService: grpc.ServiceClientConstructor; ImageService: grpc.ServiceClientConstructor } };
  };
  const target = `unix://${socket}`;
  const rt = new pkg.runtime.v1.RuntimeService(target, grpc.credentials.createInsecure());
  const im = new pkg.runtime.v1.ImageService(target, grpc.credentials.createInsecure());
  const call =
    (client: grpc.Client) =>
    <T>(method: string, req: object): Promise<T> =>
      new Promise((res, rej) => {
        const fn = (client as unknown as Record<string, Call>)[method];
        if (typeof fn !== 'function') {
          rej(new Error(`CRI: no method ${method}`));
          return;
        }
        fn.call(client, req, (err, r) => (err ? rej(new Error(`CRI ${method}: ${err.details || err.message}`)) : res(r as T)));
      });
  return {
    runtime: call(rt),
    image: call(im),
    close: () => {
      rt.close();
      im.close();
    },
  };
}
